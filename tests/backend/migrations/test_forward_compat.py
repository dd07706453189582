"""Migrations are forward-compatible by one version: the previous release's code runs on the
current schema, so a rollback (scripts/rollback.sh) never meets a database it cannot use.

"The previous code" is taken from git (docs/release.md, "Database migrations"):
- the code just before the newest migration was added (it ran on the schema one revision back;
  for the first migration, the commit that added it), and
- the newest release tag ``vX.Y.Z`` before HEAD, when there is one.
Each is exported with ``git archive`` and run as a real backend (``python -m ef_backend serve``
with the old ``backend/`` and ``common/`` first on PYTHONPATH) on a database the current code
migrated and wrote to; then the current code starts again on what the old one wrote.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import uuid
from io import BytesIO
from pathlib import Path

import httpx
import pytest

from tests.backend.conftest import BackendFactory
from tests.utils.procs import REPO, VENV_BIN, Server, free_port, start_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

VERSIONS = REPO / "backend" / "ef_backend" / "migrations" / "versions"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def _newest_migration() -> Path:
    return max(VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def previous_code_refs() -> dict[str, str]:
    """What counts as "the previous version's code": name -> git revision."""
    newest = _newest_migration()
    path = str(newest.relative_to(REPO))
    added = _git("log", "--diff-filter=A", "--format=%H", "--", path).splitlines()
    down = re.search(r"^down_revision[^=]*=\s*['\"]?(\w+)", newest.read_text(), re.M)
    if not added:  # the newest migration is not committed yet: the committed code is older
        refs = {f"before {newest.stem}": "HEAD"}
    elif down is None or down.group(1) == "None":  # the first migration: its own commit
        refs = {f"at {newest.stem}": added[-1]}
    else:
        refs = {f"before {newest.stem}": f"{added[-1]}^"}
    tags = _git("tag", "--list", "v[0-9]*.[0-9]*.[0-9]*", "--merged", "HEAD", "--sort=-v:refname")
    head_tags = set(_git("tag", "--points-at", "HEAD").splitlines())
    for tag in tags.splitlines():
        if tag not in head_tags:
            refs[f"release {tag}"] = tag
            break
    return refs


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "backend", "common"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _start_old(code: Path, data: Path, tts_url: str, log_dir: Path) -> Server:
    port = free_port()
    env = {
        "PYTHONPATH": f"{code / 'backend'}:{code / 'common'}",
        "EF_HOST": "127.0.0.1",
        "EF_PORT": str(port),
        "EF_DATA_DIR": str(data),
        "EF_TTS_URL": tts_url,
        "EF_RATE_LIMIT": "0",
    }
    args = [str(VENV_BIN / "python"), "-m", "ef_backend", "serve"]
    return start_server("ef_backend-previous", args, port=port, log_dir=log_dir, env=env)


def _speak(server: Server, text: str) -> httpx.Response:
    return httpx.post(server.url + "/api/v1/speech", json={"text": text}, timeout=60)


@pytest.mark.parametrize("name", sorted(previous_code_refs()))
def test_previous_code_runs_on_the_current_schema(
    name: str, backend_factory: BackendFactory, piper_tts: Server, tmp_path: Path
) -> None:
    ref = previous_code_refs()[name]
    data = tmp_path / "data"
    tag = uuid.uuid4().hex[:6]

    # The current code migrates the database and writes to it.
    current = backend_factory(data)
    before = _speak(current, f"Written by the current code {tag}.")
    assert before.status_code == 200, before.text
    job_id = before.headers["x-ef-job-id"]
    current.stop()

    # The previous code starts on that schema, reads what the current code wrote, writes more.
    old = _start_old(_export(ref, tmp_path / "previous"), data, piper_tts.url, tmp_path / "logs")
    try:
        old.wait_ready("/health/ready", timeout=60)
        job = httpx.get(f"{old.url}/api/v1/jobs/{job_id}", timeout=10)
        assert job.status_code == 200, job.text
        assert job.json()["status"] == "succeeded"
        hit = _speak(old, f"Written by the current code {tag}.")
        assert hit.status_code == 200, hit.text
        assert hit.headers["x-ef-cache"] == "hit"
        new = _speak(old, f"Written by the previous code {tag}.")
        assert new.status_code == 200, new.text
        old_job = new.headers["x-ef-job-id"]
        assert httpx.get(f"{old.url}/api/admin/queue", timeout=10).status_code == 200
    finally:
        old.stop()

    # And the current code again (a deploy after the rollback) on what the old code wrote.
    again = backend_factory(data)
    job = httpx.get(f"{again.url}/api/v1/jobs/{old_job}", timeout=10)
    assert job.status_code == 200, job.text
    assert job.json()["status"] == "succeeded"
    assert _speak(again, f"Written by the previous code {tag}.").headers["x-ef-cache"] == "hit"
    again.stop()


def test_there_is_previous_code_to_check() -> None:
    refs = previous_code_refs()
    assert refs, "no previous code found in git"
    for ref in refs.values():
        assert _git("rev-parse", "--verify", f"{ref}^{{commit}}")
