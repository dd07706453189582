"""Dashboards and Grafana provisioning: stable uids, $datasource, $__rate_interval, read-only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.monitoring.support import dashboard_queries, dashboards, load_yaml, panels
from tests.utils.procs import REPO

PROVISIONING = REPO / "monitoring" / "grafana" / "provisioning"
BOARDS = dashboards()


def test_the_three_dashboards_with_stable_uids() -> None:
    assert {uid: board["title"] for uid, board in BOARDS.items()} == {
        "ef-overview": "EchoForge Overview",
        "ef-speech": "EchoForge Speech pipeline",
        "ef-storage": "EchoForge Storage",
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
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["description"], f"{panel['title']}: say what the panel shows"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize(("uid", "title", "expr"), dashboard_queries(), ids=lambda v: str(v)[:40])
def test_ranges_follow_the_zoom(uid: str, title: str, expr: str) -> None:
    """Raw rate()/increase() use $__rate_interval; fixed windows come from recording rules,
    except the SLO window, which is fixed by definition."""
    unquoted = re.sub(r'"[^"]*"', '""', expr)  # label regexes may hold brackets: [{]
    for window in re.findall(r"\b(?:rate|increase|irate)\([^\[]*\[([^\]]+)\]", unquoted):
        assert window in ("$__rate_interval", "7d"), f"{uid}/{title}: [{window}]"


def test_latency_panels_ask_for_exemplars() -> None:
    exemplar_panels = [
        (uid, p["title"])
        for uid, board in BOARDS.items()
        for p in panels(board)
        if any(t.get("exemplar") for t in p.get("targets", []))
    ]
    titles = {title for _, title in exemplar_panels}
    assert {"Request duration", "Speech request duration by cache"} <= titles


def test_speech_dashboard_has_the_issue_panels() -> None:
    kinds = {p["title"]: p["type"] for p in panels(BOARDS["ef-speech"])}
    assert kinds["Speech request duration heatmap"] == "heatmap"
    for title in (
        "Queue depth and jobs running",
        "Queue wait",
        "Failure ratio by reason",
        "Cache hit ratio",
        "Real-time factor",
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
