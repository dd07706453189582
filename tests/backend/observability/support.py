"""Helpers of the observability tests: read Prometheus text, parse docs/metrics.md."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.utils.procs import REPO
from tests.utils.prometheus import samples, value

__all__ = ["documented_metrics", "exposed_families", "samples", "section_families", "value"]

METRICS_DOC = REPO / "docs" / "metrics.md"

_ROW = re.compile(r"^\|\s*`(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(?P<type>[^|]+)\|")


def exposed_families(text: str) -> dict[str, str]:
    """Family name as documented (counters with ``_total``) -> type, from a live exposition.

    prometheus-client's ``X_created`` series (a counter's or histogram's creation time) are
    parsed from the classic text format as families of their own; they belong to ``X``.
    """
    out: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        name = family.name
        if family.type == "counter":
            name += "_total"
        elif family.type == "info":
            name += "_info"
        out[name] = family.type
    for name in [n for n in out if n.endswith("_created")]:
        base = name.removesuffix("_created")
        if out.get(base) == "histogram" or out.get(base + "_total") == "counter":
            del out[name]
    return out


@dataclass(frozen=True)
class DocumentedMetric:
    name: str
    type: str
    section: str
    alerts: tuple[str, ...]
    dashboards: tuple[str, ...]


def documented_metrics() -> list[DocumentedMetric]:
    """The metric tables of docs/metrics.md, with the section (service) each row is in."""
    section = ""
    rows: list[DocumentedMetric] = []
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        match = _ROW.match(line)
        if not match:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        kind = match.group("type").strip().split()[0]

        def names(cell: str) -> tuple[str, ...]:
            return () if cell in ("-", "") else tuple(x.strip() for x in cell.split(","))

        rows.append(
            DocumentedMetric(
                name=match.group("name"),
                type=kind,
                section=section,
                alerts=names(cells[5]),
                dashboards=names(cells[6]),
            )
        )
    return rows


def section_families(prefix: str) -> dict[str, str]:
    """Documented name -> type for the sections whose title starts with ``prefix``."""
    return {m.name: m.type for m in documented_metrics() if m.section.startswith(prefix)}
