"""The API the web pages read: the server's limits, the admin page gate (page or 403 page by
client address), the admin links, recent errors and cache hit ratio, a queued job's position.

Clients bind to 127.0.0.2 to be another machine (outside the default EF_ADMIN_CIDRS).
"""

from __future__ import annotations

import httpx
import pytest

from tests.backend.api.helpers import client_for, long_text, unique_text
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = pytest.mark.server


def _from(address: str, server: Server) -> httpx.Client:
    return client_for(server, transport=httpx.HTTPTransport(local_address=address))


def test_limits_come_from_the_settings(backend_factory: BackendFactory) -> None:
    server = backend_factory(
        EF_MAX_TEXT_CHARS="1234",
        EF_MIN_SPEED="0.5",
        EF_MAX_SPEED="2",
        EF_API_KEYS="ui:limits-key-0123456789",
        EF_GRAFANA_URL="http://grafana.lan:3000/d/echoforge",
        EF_RUNBOOKS_URL="https://git.lan/echoforge/runbooks",
    )
    with client_for(server) as client:
        limits = client.get("/api/v1/limits")
        assert limits.status_code == 200, limits.text
        assert limits.json() == {
            "max_text_chars": 1234,
            "min_speed": 0.5,
            "max_speed": 2.0,
            "formats": ["wav", "mp3", "opus", "flac", "aac", "pcm"],
            "stream_formats": ["pcm", "wav", "mp3"],
            "api_key_required": True,
        }
        links = client.get("/api/admin/links")
        assert links.status_code == 200
        assert links.json() == {
            "grafana": "http://grafana.lan:3000/d/echoforge",
            "prometheus": None,
            "alertmanager": None,
            "runbooks": "https://git.lan/echoforge/runbooks",
        }


def test_admin_page_or_403_page_by_address(backend: Server) -> None:
    for path in ("/admin", "/admin/", "/admin/index.html"):
        with client_for(backend) as client:
            page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert "<title>Admin · EchoForge</title>" in page.text
        with _from("127.0.0.2", backend) as client:
            denied = client.get(path)
        assert denied.status_code == 403, path
        assert denied.headers["content-type"].startswith("text/html")
        assert "403: the admin page is not open to your address" in denied.text
        assert "EF_ADMIN_CIDRS" in denied.text
    with client_for(backend) as client:
        assert client.get("/api/admin/links").json() == {
            "grafana": None,
            "prometheus": None,
            "alertmanager": None,
            "runbooks": None,
        }


def test_recent_errors_show_a_refused_admin_call(backend: Server) -> None:
    with _from("127.0.0.2", backend) as client:
        refused = client.get("/api/admin/queue", headers={"X-Request-ID": "ui-recent-errors-1"})
    assert refused.status_code == 403
    with client_for(backend) as client:
        recent = client.get("/api/admin/errors", params={"limit": 100})
        assert recent.status_code == 200, recent.text
        body = recent.json()
        assert body["count"] == len(body["data"]) >= 1
        mine = [e for e in body["data"] if e["request_id"] == "ui-recent-errors-1"]
        assert len(mine) == 1, body
        assert mine[0]["level"] == "WARNING"
        assert mine[0]["logger"] == "ef_backend.core.security"
        assert mine[0]["message"] == (
            "admin API refused for a client outside EF_ADMIN_CIDRS: 127.0.0.2"
        )
        times = [e["time"] for e in body["data"]]
        assert times == sorted(times, reverse=True)
        assert client.get("/api/admin/errors", params={"limit": 0}).status_code == 422
    with _from("127.0.0.2", backend) as client:
        assert client.get("/api/admin/errors").status_code == 403


def test_hit_ratio_counts_lookups(backend: Server) -> None:
    with client_for(backend) as client:
        before = client.get("/api/admin/cache/hit-ratio").json()
        text = unique_text("Counted once as a miss and once as a hit")
        assert client.post("/api/v1/speech", json={"text": text}).headers["x-ef-cache"] == "miss"
        assert client.post("/api/v1/speech", json={"text": text}).headers["x-ef-cache"] == "hit"
        after = client.get("/api/admin/cache/hit-ratio").json()
    assert after["hits"] == before["hits"] + 1
    assert after["misses"] >= before["misses"] + 1  # the miss may also be looked up per sentence
    assert after["ratio"] == pytest.approx(after["hits"] / (after["hits"] + after["misses"]))


def test_a_queued_job_knows_its_place(backend_factory: BackendFactory) -> None:
    server = backend_factory(EF_TTS_CONCURRENCY="1")
    with client_for(server) as client:
        ids = [
            client.post("/api/v1/jobs", json={"text": long_text(6)}).json()["id"] for _ in range(3)
        ]
        jobs = [client.get(f"/api/v1/jobs/{i}").json() for i in ids]
        queued = [j for j in jobs if j["status"] == "queued"]
        assert queued, jobs  # one worker: at most one of three runs
        positions = [j["queue_position"] for j in queued]
        assert positions == sorted(positions) and positions[0] >= 1
        assert positions[-1] - positions[0] == len(queued) - 1
        for job in jobs:
            if job["status"] != "queued":
                assert job["queue_position"] is None
        listed = client.get("/api/v1/jobs", params={"limit": 3}).json()["data"]
        assert all(j["queue_position"] is None for j in listed)  # only the GET of one job
        for job_id in ids:
            client.delete(f"/api/v1/jobs/{job_id}")
