"""Dashboards and Grafana provisioning: stable uids, $datasource, $__rate_interval, read-only."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from monitoring.mixin.usage import metric_names
from tests.monitoring.support import (
    alert_rules,
    dashboard_queries,
    dashboards,
    load_yaml,
    panels,
    recording_rules,
)
from tests.utils.procs import REPO

PROVISIONING = REPO / "monitoring" / "grafana" / "provisioning"
BOARDS = dashboards()


def test_the_four_dashboards_with_stable_uids() -> None:
    assert {uid: board["title"] for uid, board in BOARDS.items()} == {
        "ef-overview": "EchoForge Overview",
        "ef-speech": "EchoForge Speech pipeline",
        "ef-storage": "EchoForge Storage",
        "ef-slo": "EchoForge SLO",
    }


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_dashboard_standards(uid: str) -> None:
    board = BOARDS[uid]
    assert board["editable"] is False
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique (alerts link to them)"
    for panel in panels(board):
        if panel["type"] in ("row", "alertlist"):
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["description"], f"{panel['title']}: say what the panel shows"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


ALERT_EXPRS = " ".join(re.sub(r"\s+", "", rule["expr"]) for rule in alert_rules())


@pytest.mark.parametrize(("uid", "title", "expr"), dashboard_queries(), ids=lambda v: str(v)[:40])
def test_ranges_follow_the_zoom(uid: str, title: str, expr: str) -> None:
    """Raw rate()/increase() use $__rate_interval; fixed windows come from recording rules,
    except the SLO window (fixed by definition) and a query that is an alert's own expression
    (the panel shows exactly what the alert evaluates)."""
    if re.sub(r"\s+", "", expr) in ALERT_EXPRS:
        return
    unquoted = re.sub(r'"[^"]*"', '""', expr)  # label regexes may hold brackets: [{]
    for window in re.findall(r"\b(?:rate|increase|irate|changes)\([^\[]*\[([^\]]+)\]", unquoted):
        assert window in ("$__rate_interval", "7d"), f"{uid}/{title}: [{window}]"


def test_latency_panels_ask_for_exemplars() -> None:
    exemplar_panels = [
        (uid, p["title"])
        for uid, board in BOARDS.items()
        for p in panels(board)
        if any(t.get("exemplar") for t in p.get("targets", []))
    ]
    titles = {title for _, title in exemplar_panels}
    assert {"Request duration p95 by route", "Speech request duration by cache"} <= titles


def test_speech_dashboard_has_the_issue_panels() -> None:
    kinds = {p["title"]: p["type"] for p in panels(BOARDS["ef-speech"])}
    assert kinds["Speech request duration heatmap"] == "heatmap"
    for title in (
        "Queue depth and jobs running",
        "Queue wait",
        "Engine failure ratio",
        "Cache hit ratio",
        "Real-time factor by engine",
        "Engine up and model loaded",
    ):
        assert title in kinds


def test_datasources_have_fixed_uids_and_exemplar_link() -> None:
    sources = {
        d["uid"]: d
        for d in load_yaml(PROVISIONING / "datasources" / "datasources.yml")["datasources"]
    }
    prometheus = sources["ef-prometheus"]
    assert prometheus["type"] == "prometheus" and prometheus["isDefault"] is True
    assert prometheus["url"] == "http://ef_prometheus:9090"
    link = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    # The backend puts the trace id in the exemplar label trace_id.
    assert link == [{"name": "trace_id", "datasourceUid": "ef-traces"}]
    assert sources["ef-traces"]["type"] == "jaeger"
    assert all(d["editable"] is False for d in sources.values())
    # The dashboards' default $datasource is the provisioned uid.
    for board in BOARDS.values():
        current: dict[str, Any] = board["templating"]["list"][0]["current"]
        assert current["value"] == "ef-prometheus"


def test_dashboard_provider_is_read_only() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True
    assert provider["options"]["path"] == "/etc/ef/dashboards"


def _normal(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def test_each_alert_panel_shows_the_alert_expression() -> None:
    """The panel an alert's dashboard_url opens queries what the alert reads: a recording rule
    the alert compares, or else every metric of its expression."""
    records = {rule["record"] for rule in recording_rules()}
    for rule in alert_rules():
        if rule["alert"] == "Watchdog":
            continue
        url = urlparse(rule["annotations"]["dashboard_url"].split("}}", 1)[1])
        uid = url.path.split("/")[2]
        panel_id = int(parse_qs(url.query)["viewPanel"][0])
        (panel,) = [p for p in panels(BOARDS[uid]) if p["id"] == panel_id]
        shown: set[str] = set()
        for target in panel.get("targets", []):
            shown |= metric_names(target["expr"])
        read = metric_names(rule["expr"])
        recorded = read & records
        if recorded:
            assert recorded & shown, (rule["alert"], panel["title"], recorded)
        else:
            assert read <= shown, (rule["alert"], panel["title"], read - shown)


def test_every_recording_rule_is_read() -> None:
    """No dead recording rules: an alert or a panel reads each one."""
    read: set[str] = set()
    for rule in alert_rules() + recording_rules():
        read |= metric_names(rule["expr"])
    for _, _, expr in dashboard_queries():
        read |= metric_names(expr)
    unread = {rule["record"] for rule in recording_rules()} - read
    assert unread == set()


def test_targets_up_shows_zero_as_bad() -> None:
    (panel,) = [p for p in panels(BOARDS["ef-overview"]) if p["title"] == "Scrape targets up"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0] == {"color": "red", "value": None}
    assert steps[1] == {"color": "green", "value": 1}


def test_readiness_panel_has_every_check() -> None:
    (panel,) = [p for p in panels(BOARDS["ef-overview"]) if p["title"] == "Readiness checks"]
    exprs = " ".join(t["expr"] for t in panel["targets"])
    for metric in ("ef_db_up", "ef_tts_engine_up", "ef_audio_cache_writable"):
        assert metric in exprs


def test_route_panels_leave_out_scrapes_and_probes() -> None:
    for title in ("Request rate by route", "Request duration p95 by route"):
        (panel,) = [p for p in panels(BOARDS["ef-overview"]) if p["title"] == title]
        for target in panel["targets"]:
            assert 'route=~"/api/v1/.*|/v1/.*"' in target["expr"], title


def test_process_panels_and_alert_list() -> None:
    board = BOARDS["ef-overview"]
    exprs = " ".join(t["expr"] for p in panels(board) for t in p.get("targets", []))
    for metric in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ):
        assert metric in exprs
    assert [p["title"] for p in panels(board) if p["type"] == "alertlist"] == ["Alerts"]


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_restart_and_version_annotations(uid: str) -> None:
    names = {a["name"]: a for a in BOARDS[uid]["annotations"]["list"]}
    assert "process_start_time_seconds" in names["Restarts"]["expr"]
    assert "ef_build_info" in names["Version changes"]["expr"]
