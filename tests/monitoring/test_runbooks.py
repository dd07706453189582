"""Every link in every runbook leads somewhere: a file of the repository, or a panel of a
generated dashboard (``http://localhost:3000/d/<uid>/<slug>?viewPanel=<id>``, Grafana's default
address; emails carry the operator's EF_GRAFANA_URL instead)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from monitoring.mixin import config
from tests.monitoring.support import dashboards, panels
from tests.utils.procs import REPO

RUNBOOKS = sorted((REPO / "runbooks").rglob("*.md"))
#: [text](target): markdown inline links (code spans are not links).
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return LINK.findall(text)


def broken_links(path: Path) -> list[str]:
    """The links of ``path`` that resolve to no file and no generated panel."""
    boards = dashboards()
    broken = []
    for target in _links(path):
        if target.startswith(config.DEFAULT_GRAFANA_URL + "/d/"):
            url = urlparse(target)
            _, _, uid, slug = url.path.split("/", 3)
            board = boards.get(uid)
            ids = {p["id"] for p in panels(board)} if board else set()
            view = parse_qs(url.query).get("viewPanel", ["0"])[0]
            expected_slug = board["title"].lower().replace(" ", "-") if board else None
            if board is None or slug != expected_slug or int(view) not in ids:
                broken.append(target)
        elif "://" in target or target.startswith("mailto:"):
            broken.append(target)  # outside the repository: not checkable, not allowed
        elif not (path.parent / target.split("#", 1)[0]).resolve().exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_rollback_runbook_exists_and_is_linked() -> None:
    linked = [p.name for p in RUNBOOKS if "../rollback.md" in _links(p)]
    assert (REPO / "runbooks" / "rollback.md").is_file()
    assert len(linked) >= 3, linked


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    """The check can fail: a missing file, a panel id that does not exist, a foreign URL."""
    page = tmp_path / "x.md"
    good = f"{config.DEFAULT_GRAFANA_URL}/d/ef-overview/echoforge-overview?viewPanel=1"
    bad_panel = f"{config.DEFAULT_GRAFANA_URL}/d/ef-overview/echoforge-overview?viewPanel=999"
    page.write_text(
        f"[a]({good}) [b]({bad_panel}) [c](missing.md) [d](https://example.org/) `[e](nope.md)`"
    )
    assert broken_links(page) == [bad_panel, "missing.md", "https://example.org/"]


def test_monitoring_commands_name_the_monitoring_compose_file() -> None:
    """A command that reaches a monitoring service includes docker-compose.monitoring.yml."""
    services = ("ef_prometheus", "ef_alertmanager", "ef_grafana", "ef_disk_exporter", "ef_blackbox")
    for path in RUNBOOKS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "docker compose " in line and any(s in line for s in services):
                assert "-f docker-compose.monitoring.yml" in line, f"{path.name}: {line}"
