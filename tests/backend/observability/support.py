"""Helpers of the observability tests: read Prometheus text, capture JSON logs, parse docs."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ef_common.logging import configure_logging
from ef_common.request_batch import flush_pending
from prometheus_client.parser import text_string_to_metric_families

from tests.utils.procs import REPO

METRICS_DOC = REPO / "docs" / "metrics.md"

_ROW = re.compile(r"^\|\s*`(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(?P<type>[^|]+)\|")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value, 0.0 when the series does not exist (yet)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


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


@contextmanager
def captured_logs(level: str = "INFO", service: str = "test") -> Iterator[io.StringIO]:
    """Configure our JSON logging into a buffer; restore the previous set-up afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uv_access = logging.getLogger("uvicorn.access")
    saved_access = (list(uv_access.handlers), uv_access.propagate, uv_access.disabled)
    buffer = io.StringIO()
    configure_logging(level, service=service, stream=buffer)
    try:
        yield buffer
    finally:
        # Access-log lines are written after the event-loop turn their request ended in; an
        # in-process client may not have given the loop that turn yet.
        flush_pending()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        uv_access.handlers[:] = saved_access[0]
        uv_access.propagate, uv_access.disabled = saved_access[1], saved_access[2]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line must be one JSON object: parse them all (fails on the first that is not)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"log line {number} is not JSON: {line!r}") from exc
        assert isinstance(doc, dict), f"log line {number} is not an object: {line!r}"
        out.append(doc)
    return out
