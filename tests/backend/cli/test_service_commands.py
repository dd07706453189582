"""``ef health``, ``ef cache`` and ``ef jobs`` against a real backend and Piper engine."""

from __future__ import annotations

import httpx
import pytest

from tests.backend.api.helpers import client_for, long_text, unique_text, wait_job
from tests.backend.cli.helpers import ef
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server, free_port

pytestmark = pytest.mark.server


def _at(server: Server) -> dict[str, str]:
    return {"EF_URL": server.url}


def test_health_exit_codes(backend: Server, dead_engine_backend: Server) -> None:
    healthy = ef("health", "--json", env=_at(backend))
    assert healthy.code == 0, healthy.stdout + healthy.stderr
    body = healthy.json()
    assert body["url"] == backend.url and body["healthy"] is True and body["status"] == "ok"
    assert set(body["health"]["checks"]) >= {"database", "engine"}

    text = ef("health", "--url", backend.url)
    assert text.code == 0
    assert text.stdout.startswith(f"{backend.url}: healthy\ncheck")

    down = ef("health", env=_at(dead_engine_backend))
    assert down.code == 1
    assert down.stdout.startswith(f"{dead_engine_backend.url}: UNHEALTHY\n")
    assert "engine    fail" in down.stdout

    nobody = f"http://127.0.0.1:{free_port()}"
    closed = ef("health", "--json", "--url", nobody)
    assert closed.code == 3
    assert closed.json()["error"].startswith(f"cannot reach the service at {nobody}: ")
    assert closed.json()["exit_code"] == 3


def test_cache_stats_and_purge(backend: Server) -> None:
    with client_for(backend) as client:
        text = unique_text("Cached for the ef command")
        assert client.post("/api/v1/speech", json={"text": text}).status_code == 200
    stats = ef("cache", "stats", "--json", env=_at(backend))
    assert stats.code == 0
    assert stats.json()["entries"] >= 1 and stats.json()["max_bytes"] == 1024**3

    refused = ef("cache", "purge", env=_at(backend))
    assert refused.code == 4
    assert refused.stderr == "ef: purging deletes every cached audio file: add --yes\n"
    purged = ef("cache", "purge", "--yes", "--json", env=_at(backend))
    assert purged.code == 0
    assert purged.json()["removed"] >= 1
    assert ef("cache", "stats", "--json", env=_at(backend)).json()["entries"] == 0


def test_jobs_list_show_retry_cancel(backend_factory: BackendFactory) -> None:
    server = backend_factory(EF_TTS_CONCURRENCY="1")
    env = _at(server)
    with client_for(server) as client:
        busy = client.post("/api/v1/jobs", json={"text": long_text(8)}).json()
        waiting = client.post("/api/v1/jobs", json={"text": unique_text("Cancelled by ef")}).json()
        wait_job(client, busy["id"], until=("running",))

        listed = ef("jobs", "list", "--status", "queued", "--json", env=env)
        assert listed.code == 0
        assert [j["id"] for j in listed.json()["data"]] == [waiting["id"]]

        cancelled = ef("jobs", "cancel", waiting["id"], "--json", env=env)
        assert cancelled.code == 0, cancelled.stdout
        assert cancelled.json()["status"] == "cancelled"
        again = ef("jobs", "cancel", waiting["id"], env=env)
        assert again.code == 4
        assert again.stderr == (
            f"ef: DELETE /api/admin/jobs/{waiting['id']} answered 409: Job {waiting['id']} is "
            "cancelled; only a queued job can be cancelled.\n"
        )

        retried = ef("jobs", "retry", waiting["id"], env=env)
        assert retried.code == 0
        assert retried.stdout == f"job {waiting['id']} is queued again\n"
        wait_job(client, waiting["id"])

    shown = ef("jobs", "show", busy["id"], "--json", env=env)
    assert shown.code == 0 and shown.json()["id"] == busy["id"]
    text = ef("jobs", "list", "--limit", "5", env=env)
    assert text.code == 0
    assert text.stdout.splitlines()[0].split() == [
        "id", "status", "client", "attempts", "created", "error"
    ]  # fmt: skip
    assert text.stdout.rstrip().endswith("2 of 2 jobs")
    missing = ef("jobs", "show", "0" * 32, "--json", env=env)
    assert missing.code == 4
    assert missing.json()["status"] == 404
    assert ef("jobs", "list", "--status", "lost").code == 2


def test_admin_routes_refused_from_outside_the_admin_networks(
    backend_factory: BackendFactory,
) -> None:
    server = backend_factory(EF_ADMIN_CIDRS="10.0.0.0/8")
    ran = ef("jobs", "list", "--json", env=_at(server))
    assert ran.code == 4
    assert ran.json()["status"] == 403
    assert "EF_ADMIN_CIDRS" in ran.json()["error"]
    # Health needs no admin address.
    assert ef("health", env=_at(server)).code == 0
    assert httpx.get(server.url + "/health/live").status_code == 200
