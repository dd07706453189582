"""Small builders for Grafana dashboard JSON (schema 39, Grafana 10/11).

Only what the EchoForge dashboards use: rows, time series, stats, gauges, a heatmap and an alert
list, all on the ``$datasource`` variable so a dashboard works against whichever Prometheus it is
pointed at, and annotations drawn from PromQL (restarts, version changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: The uid provisioned in monitoring/grafana/provisioning/datasources/datasources.yml.
PROMETHEUS_UID = "ef-prometheus"
PROMETHEUS_NAME = "Prometheus"

Json = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """One query of a panel."""

    expr: str
    legend: str = ""
    #: Ask for exemplars: a dot on the panel that opens the request's trace.
    exemplar: bool = False
    instant: bool = False
    heatmap: bool = False

    def json(self, ref: str) -> Json:
        out: Json = {
            "refId": ref,
            "datasource": DATASOURCE,
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "instant": self.instant,
            "exemplar": self.exemplar,
        }
        if self.heatmap:
            out["format"] = "heatmap"
        return out


@dataclass(frozen=True)
class Panel:
    """A panel; ``key`` is how alerts refer to it, ``id`` stays fixed so links keep working."""

    id: int
    key: str
    title: str
    description: str
    targets: tuple[Target, ...]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    minimum: float | None = None
    maximum: float | None = None
    #: (value, colour) steps after the base green, e.g. ((0.8, "orange"), (0.95, "red")).
    steps: tuple[tuple[float, str], ...] = ()
    #: Value to text, for up/down stats.
    mappings: tuple[tuple[int, str, str], ...] = ()
    #: Draw thresholds as dashed lines on time series.
    threshold_lines: bool = False
    stack: bool = False
    #: Colour below the first step (red where low values are bad: targets up, budget left).
    base_colour: str = "green"

    def json(self, x: int, y: int) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": self.base_colour, "value": None}]
                + [{"color": colour, "value": value} for value, colour in self.steps],
            },
        }
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.mappings:
            defaults["mappings"] = [
                {
                    "type": "value",
                    "options": {str(v): {"text": text, "color": colour, "index": i}},
                }
                for i, (v, text, colour) in enumerate(self.mappings)
            ]
            defaults["color"] = {"mode": "thresholds"}
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if self.stack else "none", "group": "A"},
                "thresholdsStyle": {"mode": "dashed" if self.threshold_lines else "off"},
            }
        out: Json = {
            "id": self.id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": _options(self.kind),
            "targets": [t.json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
        }
        if self.kind == "alertlist":
            # Lists the rules of the Prometheus data source (Grafana's alert list shows
            # data-source-managed alerts); it has no query of its own.
            del out["targets"], out["fieldConfig"]
        return out


def _options(kind: str) -> Json:
    if kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind in ("stat", "gauge"):
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
            "showThresholdMarkers": True,
        }
    if kind == "heatmap":
        return {
            "calculate": False,
            "yAxis": {"unit": "s"},
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "cellGap": 1,
            "tooltip": {"show": True, "yHistogram": True},
            "legend": {"show": True},
        }
    if kind == "alertlist":
        return {
            "viewMode": "list",
            "groupMode": "default",
            "groupBy": [],
            "maxItems": 20,
            "sortOrder": 1,
            "dashboardAlerts": False,
            "alertName": "",
            "alertInstanceLabelFilter": "",
            # The data source's name: Grafana lists the rules Prometheus evaluates.
            "datasource": PROMETHEUS_NAME,
            "showInstances": True,
            "stateFilter": {
                "firing": True,
                "pending": True,
                "noData": False,
                "normal": False,
                "error": True,
            },
        }
    raise ValueError(f"unknown panel kind {kind!r}")


@dataclass(frozen=True)
class Annotation:
    """Marks on every time series of a dashboard where ``expr`` has a value."""

    name: str
    expr: str
    title: str
    text: str
    colour: str

    def json(self) -> Json:
        return {
            "name": self.name,
            "datasource": DATASOURCE,
            "enable": True,
            "hide": False,
            "iconColor": self.colour,
            "expr": self.expr,
            "step": "1m",
            "titleFormat": self.title,
            "textFormat": self.text,
            "useValueForTime": False,
        }


@dataclass(frozen=True)
class Row:
    id: int
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("echoforge",)
    links: tuple[str, ...] = field(default=())
    annotations: tuple[Annotation, ...] = ()

    @property
    def slug(self) -> str:
        return self.title.lower().replace(":", "").replace(" ", "-")

    def panel(self, key: str) -> Panel:
        for row in self.rows:
            for panel in row.panels:
                if panel.key == key:
                    return panel
        raise KeyError(f"dashboard {self.uid} has no panel {key!r}")

    def json(self) -> Json:
        panels: list[Json] = []
        y = 0
        for row in self.rows:
            panels.append(
                {
                    "id": row.id,
                    "type": "row",
                    "title": row.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
            x = 0
            line_height = 0
            for panel in row.panels:
                if x + panel.width > 24:
                    x, y, line_height = 0, y + line_height, 0
                panels.append(panel.json(x, y))
                x += panel.width
                line_height = max(line_height, panel.height)
            y += line_height
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "timezone": "browser",
            "time": {"from": "now-6h", "to": "now"},
            "refresh": "30s",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    },
                    *(a.json() for a in self.annotations),
                ]
            },
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["echoforge"],
                    "asDropdown": False,
                    "includeVars": True,
                    "keepTime": True,
                    "title": "EchoForge",
                }
            ],
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Data source",
                        "type": "datasource",
                        "query": "prometheus",
                        "current": {"text": "Prometheus", "value": PROMETHEUS_UID},
                        "hide": 0,
                        "refresh": 1,
                        "regex": "",
                        "options": [],
                    }
                ]
            },
            "panels": panels,
        }
