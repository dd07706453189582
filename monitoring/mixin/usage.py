"""Which metrics each alert and dashboard reads: the "used by" columns of docs/metrics.md.

``python -m monitoring.mixin --usage`` prints the table; the metric-contract test uses the same
parser to check every name against the live /metrics of the services.
"""

from __future__ import annotations

import re
from collections import defaultdict

from monitoring.mixin import alerting, dashboards, recording

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_SUFFIXES = ("_bucket", "_count", "_sum")


def metric_names(expr: str) -> set[str]:
    """Metric (and recording rule) names a PromQL expression reads; functions, label names,
    keywords and durations are left out."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = _RANGE.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def family(name: str) -> str:
    """``ef_x_seconds_bucket`` -> ``ef_x_seconds``: the name docs/metrics.md lists."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _resolve(expr: str, records: dict[str, str]) -> set[str]:
    """Raw metric names, following recording rules down to what they read."""
    out: set[str] = set()
    for name in metric_names(expr):
        out |= _resolve(records[name], records) if name in records else {name}
    return out


def usage() -> dict[str, tuple[list[str], list[str]]]:
    """family -> (alerts, dashboards) that read it."""
    records = {
        rule["record"]: rule["expr"] for group in recording.groups() for rule in group["rules"]
    }
    alerts: dict[str, set[str]] = defaultdict(set)
    boards: dict[str, set[str]] = defaultdict(set)
    for alert in alerting.all_alerts():
        for name in _resolve(alert.expr, records):
            alerts[family(name)].add(alert.name)
    for board in dashboards.all_dashboards():
        for row in board.rows:
            for panel in row.panels:
                for target in panel.targets:
                    for name in _resolve(target.expr, records):
                        boards[family(name)].add(board.title.removeprefix("EchoForge "))
    names = sorted(set(alerts) | set(boards))
    return {n: (sorted(alerts.get(n, ())), sorted(boards.get(n, ()))) for n in names}


def markdown() -> str:
    lines = ["| metric | alerts | dashboards |", "|---|---|---|"]
    for name, (alerts, boards) in usage().items():
        lines.append(f"| `{name}` | {', '.join(alerts) or '-'} | {', '.join(boards) or '-'} |")
    return "\n".join(lines)
