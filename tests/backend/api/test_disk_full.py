"""The audio cache volume full: a real 2 MB tmpfs mounted on the cache directory alone (the
database stays on the ordinary disk), a real backend and the real Piper ef_tts.

What a full cache answers (docs/reliability.md, "The audio cache volume full"):

* a synchronous request (native or OpenAI route) whose audio was made but could not be stored
  still gets it: 200 with ``X-EF-Stored: no``, the whole file, sent from memory; its job fails
  with reason ``storage``;
* audio that could only come from the cache answers 507 ``storage_error``: the audio of an
  asynchronous job, and a second request that joined the first one's job in flight (the
  unstored audio is handed to one waiter only);
* nothing half-written stays in the cache, no row points at a missing file, entries stored
  before are served unchanged, and once space is freed the same requests succeed.

Mounting needs root (or CAP_SYS_ADMIN, or passwordless sudo); elsewhere the test skips and
says why. CI's test container gets CAP_SYS_ADMIN for it (.github/workflows/ci.yml).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from ef_backend.models import AudioFormat
from ef_backend.services.cache import relative_path

from tests.backend.api.helpers import (
    client_for,
    decode,
    error_of,
    long_text,
    unique_text,
    wait_job,
)
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = [pytest.mark.server, pytest.mark.slow]

VOLUME = "2m"
#: Free space left once the volume is filled: less than any sentence of WAV (about 40 kB/s).
LEFT_BYTES = 8 * 1024
FILLER = "filler.bin"
#: What the job of audio that could not be stored says (and the 507 repeats).
NOT_STORED = (
    "The audio was made but could not be stored (No space left on device); free space in "
    "EF_DATA_DIR or make it writable, then submit the request again."
)


def _mount_tmpfs(target: Path) -> list[str]:
    """Mount a small tmpfs on ``target``; returns the command prefix that did it ([] or sudo).
    Skips the test, saying why, where neither a plain nor a ``sudo -n`` mount works."""
    options = f"size={VOLUME},mode=0750,uid={os.getuid()},gid={os.getgid()}"
    mount = ["mount", "-t", "tmpfs", "-o", options, "ef-test-cache", str(target)]
    failures = []
    for prefix in ([], ["sudo", "-n"]):
        if prefix and shutil.which("sudo") is None:
            failures.append("sudo: not installed")
            continue
        result = subprocess.run(
            [*prefix, *mount], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode == 0 and os.path.ismount(target):
            return prefix
        failures.append(f"{' '.join([*prefix, 'mount'])}: {' '.join(result.stderr.split())}")
    pytest.skip(
        "cannot mount a tmpfs on the audio cache (needs root, CAP_SYS_ADMIN or passwordless "
        "sudo): " + "; ".join(failures)
    )


def _unmount(target: Path, prefix: list[str]) -> None:
    plain = subprocess.run([*prefix, "umount", str(target)], capture_output=True, check=False)
    if plain.returncode != 0:  # still busy: detach it now, the kernel frees it when idle
        subprocess.run([*prefix, "umount", "-l", str(target)], capture_output=True, check=True)


@pytest.fixture
def small_cache(backend_factory: BackendFactory, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A backend whose audio cache is a 2 MB tmpfs; stopped before the volume is unmounted."""
    data = tmp_path / "data"
    cache = data / "audio-cache"
    cache.mkdir(parents=True)
    prefix = _mount_tmpfs(cache)
    server: Server | None = None
    try:
        # Readiness fails below 64 kB free (the default 100 MB would never be ready here).
        server = backend_factory(data, EF_MIN_FREE_BYTES=str(64 * 1024))
        yield server, cache
    finally:
        if server is not None:
            server.stop()
        _unmount(cache, prefix)


def _fill(cache: Path) -> None:
    """Leave `LEFT_BYTES` free: written for real (a sparse file would take no room)."""
    stat = os.statvfs(cache)
    free = stat.f_bavail * stat.f_frsize
    with open(cache / FILLER, "wb") as filler:
        filler.write(b"\0" * (free - LEFT_BYTES))
    stat = os.statvfs(cache)
    assert stat.f_bavail * stat.f_frsize == LEFT_BYTES


def _files(cache: Path) -> set[str]:
    """Every file under the cache (temporary ones included), relative to it."""
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if not p.is_dir()}


def _whole_wav(response: httpx.Response) -> bytes:
    """The body, checked to be one complete WAV file (no partial audio served)."""
    body = response.content
    assert response.headers["content-type"] == "audio/wav", response.headers
    assert int(response.headers["content-length"]) == len(body)
    assert body[:4] == b"RIFF" and int.from_bytes(body[4:8], "little") == len(body) - 8
    assert decode(body).duration_s > 0.3
    return body


def _first_running(client: httpx.Client, text: str) -> str:
    """The id of the newest job once it is active and as long as ``text``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for job in client.get("/api/v1/jobs", params={"limit": 1}).json()["data"]:
            if job["text_chars"] == len(text) and job["status"] in ("queued", "running"):
                return str(job["id"])
        time.sleep(0.02)
    raise AssertionError(f"no active job for {text!r}")


def test_a_full_cache_volume_answers_clearly_and_leaves_nothing_behind(
    small_cache: tuple[Server, Path],
) -> None:
    server, cache = small_cache
    with client_for(server) as client:
        kept_text = unique_text("Stored before the disk filled")
        kept = client.post("/api/v1/speech", json={"text": kept_text})
        assert kept.status_code == 200, kept.text
        assert "x-ef-stored" not in kept.headers
        kept_job = client.post("/api/v1/jobs", json={"text": unique_text("Queued before")})
        kept_id = kept_job.json()["id"]
        wait_job(client, kept_id)
        kept_job_audio = client.get(f"/api/v1/jobs/{kept_id}/audio")
        assert kept_job_audio.status_code == 200, kept_job_audio.text
        before = _files(cache)
        _fill(cache)

        # Synchronous requests still get the audio the engine made, whole, from memory.
        text = unique_text("Spoken while the disk is full")
        spoken = client.post("/api/v1/speech", json={"text": text})
        assert spoken.status_code == 200, spoken.text
        assert spoken.headers["x-ef-cache"] == "miss"
        assert spoken.headers["x-ef-stored"] == "no"
        _whole_wav(spoken)
        spoken_id = spoken.headers["x-ef-job-id"]
        job = client.get(f"/api/v1/jobs/{spoken_id}").json()
        assert (job["status"], job["error_reason"], job["error"]) == (
            "failed",
            "storage",
            NOT_STORED,
        )
        openai = client.post(
            "/v1/audio/speech",
            json={
                "model": "tts-1",
                "input": unique_text("OpenAI while full"),
                "voice": "alloy",
                "response_format": "wav",
            },
        )
        assert openai.status_code == 200, openai.text
        assert openai.headers["x-ef-stored"] == "no"
        _whole_wav(openai)

        # An asynchronous job's audio only ever comes from the cache: 507.
        queued = client.post("/api/v1/jobs", json={"text": unique_text("Queued while full")})
        queued_id = queued.json()["id"]
        failed = wait_job(client, queued_id, until=("failed",))
        assert (failed["error_reason"], failed["error"]) == ("storage", NOT_STORED)
        refused = client.get(f"/api/v1/jobs/{queued_id}/audio")
        assert refused.status_code == 507, refused.text
        assert error_of(refused) == {
            "code": "storage_error",
            "message": NOT_STORED,
            "job_id": queued_id,
        }

        # Two identical requests share one job; the unstored audio goes to one of them only.
        shared = long_text(2)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(client.post, "/api/v1/speech", json={"text": shared})
            shared_id = _first_running(client, shared)
            second = pool.submit(client.post, "/api/v1/speech", json={"text": shared})
            answers = sorted((first.result(), second.result()), key=lambda r: r.status_code)
        assert [r.status_code for r in answers] == [200, 507], [r.text for r in answers]
        assert answers[0].headers["x-ef-job-id"] == shared_id
        _whole_wav(answers[0])
        assert error_of(answers[1]) == {
            "code": "storage_error",
            "message": NOT_STORED,
            "job_id": shared_id,
        }

        # Nothing half-written left behind; what was stored before is served unchanged.
        assert _files(cache) == before | {FILLER}
        again = client.post("/api/v1/speech", json={"text": kept_text})
        assert again.headers["x-ef-cache"] == "hit"
        assert again.content == kept.content
        assert client.get(f"/api/v1/jobs/{kept_id}/audio").content == kept_job_audio.content
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["cache"]["error"] == "less free space than EF_MIN_FREE_BYTES"

        # Space freed: the same requests succeed and are stored, the failed job too.
        (cache / FILLER).unlink()
        assert client.get("/health/ready").status_code == 200
        stored = client.post("/api/v1/speech", json={"text": text})
        assert stored.status_code == 200, stored.text
        assert "x-ef-stored" not in stored.headers
        assert client.post("/api/v1/speech", json={"text": text}).headers["x-ef-cache"] == "hit"
        retried = client.post(f"/api/admin/jobs/{queued_id}/retry")
        assert retried.status_code == 200, retried.text
        wait_job(client, queued_id)
        _whole_wav(client.get(f"/api/v1/jobs/{queued_id}/audio"))

    # The database: intact, every job recorded, every entry's file there and no file unlisted.
    with sqlite3.connect(f"file:{cache.parent / 'db.sqlite'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        jobs = dict(db.execute("SELECT id, status FROM job").fetchall())
        entries = db.execute("SELECT key, format FROM cache_entry").fetchall()
    assert jobs[kept_id] == "succeeded" and jobs[queued_id] == "succeeded"
    assert jobs[spoken_id] == "failed" and jobs[shared_id] == "failed"
    listed = {relative_path(key, AudioFormat(fmt)) for key, fmt in entries}
    assert listed == _files(cache)
