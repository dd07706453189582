"""Lint of the alert rules: severity, summary, description, runbook, dashboard link, tests.

The standards every alert must meet (docs/monitoring.md); a new alert that misses one fails here.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from monitoring.mixin import config
from tests.monitoring.support import (
    ALERTS_DIR,
    RUNBOOKS_DIR,
    alert_rules,
    dashboards,
    iter_alert_names,
    load_yaml,
    panels,
    recording_rules,
)

RULES = alert_rules()
SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Recovery", "Silence", "Escalate")
#: Watcher alerts copied from the upstream prometheus-mixin and alertmanager-mixin keep their
#: names, so that their upstream runbooks and searches still find them.
UPSTREAM = re.compile(r"(Prometheus|Alertmanager)[A-Z][A-Za-z]+")


def _id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule['labels']['severity']}"


def test_there_are_alerts_for_every_area_of_the_issue() -> None:
    names = set(iter_alert_names())
    for required in (
        "EFBackendDown",
        "EFTTSDown",
        "EFBackendNotReady",
        "EFBackendHigh5xxRatio",
        "EFSpeechLatencyHigh",
        "EFTTSFailureRatioHigh",
        "EFQueueStalled",
        "EFQueueFull",
        "EFDatabaseLarge",
        "EFDiskUsageHigh",
        "EFDiskWillFillIn24h",
        "EFAudioCacheChurn",
        "EFDiskInodesLow",
        "EFCrashLooping",
        "EFTTSMemoryHigh",
        "EFProbeFailed",
        "EFSpeechLatencyBudgetBurn",
        "PrometheusBadConfig",
        "PrometheusRuleFailures",
        "PrometheusErrorSendingAlertsToSomeAlertmanagers",
        "PrometheusNotConnectedToAlertmanagers",
        "AlertmanagerFailedReload",
        "AlertmanagerFailedToSendAlerts",
        "EFTargetMissing",
        "Watchdog",
        "EFSpeechErrorBudgetBurn",
    ):
        assert required in names


@pytest.mark.parametrize("rule", RULES, ids=_id)
def test_alert_meets_the_standard(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert (
        name == "Watchdog" or re.fullmatch(r"EF[A-Z][A-Za-z0-9]+", name) or UPSTREAM.fullmatch(name)
    ), name
    labels, annotations = rule["labels"], rule["annotations"]
    assert labels["severity"] in config.SEVERITIES
    assert labels.get("component"), "the inhibitions need a component label"
    if name != "Watchdog":
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name} needs a for:"

    summary = annotations["summary"]
    assert "{{" not in summary, "summary must be static (it groups notifications)"
    assert summary.endswith("."), summary
    assert "{{" in annotations["description"], "description must carry the values"

    # The base URL is an external label that .env sets (EF_RUNBOOKS_URL).
    assert annotations["runbook_url"] == (
        f"{{{{ $externalLabels.{config.RUNBOOKS_URL_LABEL} }}}}/alerts/{name}.md"
    )
    assert (RUNBOOKS_DIR / f"{name}.md").is_file(), f"runbooks/alerts/{name}.md is missing"


@pytest.mark.parametrize("rule", RULES, ids=_id)
def test_dashboard_url_opens_an_existing_panel(rule: dict[str, Any]) -> None:
    base = f"{{{{ $externalLabels.{config.GRAFANA_URL_LABEL} }}}}"
    link = rule["annotations"]["dashboard_url"]
    assert link.startswith(base), link
    url = urlparse("http://grafana" + link.removeprefix(base))
    match = re.fullmatch(r"/d/([\w-]+)/[\w-]+", url.path)
    assert match, url.path
    boards = dashboards()
    assert match.group(1) in boards, f"no dashboard with uid {match.group(1)}"
    panel_id = int(parse_qs(url.query)["viewPanel"][0])
    ids = {p["id"] for p in panels(boards[match.group(1)]) if p["type"] != "row"}
    assert panel_id in ids, f"dashboard {match.group(1)} has no panel {panel_id}"


@pytest.mark.parametrize("name", sorted(set(iter_alert_names())))
def test_runbook_has_the_sections(name: str) -> None:
    text = (RUNBOOKS_DIR / f"{name}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n")
    headings = re.findall(r"^## (\w+)", text, flags=re.MULTILINE)
    assert tuple(headings) == SECTIONS, headings
    diagnosis = text.split("## Diagnosis", 1)[1].split("## Mitigation", 1)[0]
    assert "```" in diagnosis, "Diagnosis gives the commands or queries to run"


def test_no_orphan_runbooks() -> None:
    names = set(iter_alert_names())
    orphans = [p.stem for p in RUNBOOKS_DIR.glob("*.md") if p.stem not in names]
    assert orphans == []


def test_recording_rules_are_named_level_metric_operations() -> None:
    for rule in recording_rules():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert has a promtool case where it fires and one where it must stay silent."""
    fired: set[str] = set()
    silent: set[str] = set()
    for path in sorted((ALERTS_DIR / "tests").glob("*.test.yml")):
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = set(iter_alert_names())
    assert names - fired == set(), "alerts never shown firing"
    assert names - {"Watchdog"} - silent == set(), "alerts never shown silent"
