"""The admin API and its guard: EF_ADMIN_CIDRS, X-Forwarded-For only from EF_TRUSTED_PROXIES.

Clients bind to other loopback addresses (127.0.0.2, 127.0.0.3) to be other machines.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.backend.api.helpers import (
    client_for,
    decode,
    error_of,
    start_piper_engine,
    unique_text,
    wait_job,
)
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server, free_port

pytestmark = pytest.mark.server

ADMIN_GETS = ["/api/admin/queue", "/api/admin/jobs/failed", "/api/admin/cache"]


def _from(address: str, server: Server) -> httpx.Client:
    return client_for(server, transport=httpx.HTTPTransport(local_address=address))


def test_admin_from_localhost(backend: Server) -> None:
    with client_for(backend) as client:
        job = client.post("/api/v1/jobs", json={"text": unique_text("Admin sees this")}).json()
        wait_job(client, job["id"])
        queue = client.get("/api/admin/queue")
        assert queue.status_code == 200, queue.text
        stats = queue.json()
        assert stats["counts"]["succeeded"] >= 1
        assert stats["max"] == 100
        cache = client.get("/api/admin/cache").json()
        assert cache["entries"] >= 1 and cache["size_bytes"] > 0
        assert cache["max_bytes"] == 1024**3
        failed = client.get("/api/admin/jobs/failed").json()
        assert failed["count"] == len(failed["data"]) == 0


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_admin_denied_from_another_address(backend: Server, path: str) -> None:
    with _from("127.0.0.2", backend) as client:
        response = client.get(path)
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "forbidden"
    assert error["message"] == "The admin API is only open to clients in EF_ADMIN_CIDRS."
    assert "127.0.0.2" not in response.text  # the answer does not echo the address


def test_admin_denied_for_writes_from_another_address(backend: Server) -> None:
    with _from("127.0.0.2", backend) as client:
        assert client.delete("/api/admin/cache").status_code == 403
        assert client.post("/api/admin/jobs/" + "0" * 32 + "/retry").status_code == 403
    with client_for(backend) as client:
        # The cache survived the refused purge.
        assert client.get("/api/admin/cache").json()["entries"] >= 0


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(backend: Server) -> None:
    with _from("127.0.0.2", backend) as client:
        response = client.get("/api/admin/queue", headers={"X-Forwarded-For": "127.0.0.1"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


@pytest.fixture(scope="module")
def behind_proxy(backend_factory: BackendFactory) -> Server:
    """A backend that trusts 127.0.0.3 as its reverse proxy and admits the LAN 192.168.1.0/24."""
    return backend_factory(
        EF_TRUSTED_PROXIES="127.0.0.3/32",
        EF_ADMIN_CIDRS="192.168.1.0/24",
        EF_RATE_LIMIT="1000",
    )


@pytest.mark.parametrize(
    ("forwarded", "status"),
    [
        ("192.168.1.20", 200),
        ("10.0.0.7, 192.168.1.20", 200),  # the client may prepend anything; we read right to left
        ("192.168.1.20, 10.0.0.7", 403),  # the proxy saw 10.0.0.7: the rightmost untrusted hop
        ("192.168.1.20, 127.0.0.3", 200),  # a chain of trusted proxies is skipped
        ("not-an-address", 403),
        (None, 403),  # the proxy itself is not in EF_ADMIN_CIDRS
        # A header that is not a plain list of addresses: unknown client, never an admin.
        ("192.168.1.20, garbage", 403),
        ("8.8.8.8:1234", 403),
        ("[2001:db8::1]", 403),
        ("", 403),
        (",", 403),
        ("192.168.1.20,,", 403),
        ("192.168.1.20:80", 403),
    ],
)
def test_forwarded_for_is_read_from_a_trusted_proxy(
    behind_proxy: Server, forwarded: str | None, status: int
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    with _from("127.0.0.3", behind_proxy) as client:
        response = client.get("/api/admin/queue", headers=headers)
    assert response.status_code == status, response.text


def test_forwarded_for_from_an_untrusted_peer_behind_proxy_setup(behind_proxy: Server) -> None:
    with _from("127.0.0.2", behind_proxy) as client:
        response = client.get("/api/admin/queue", headers={"X-Forwarded-For": "192.168.1.20"})
    assert response.status_code == 403


@pytest.mark.slow
def test_failed_job_is_listed_and_retried_once_the_engine_is_fixed(
    backend_factory: BackendFactory, session_tmp: Path
) -> None:
    """A real engine misconfigured to refuse the text (a permanent failure), then fixed and
    restarted on the same port; the admin retries the failed job."""
    port = free_port()
    engine = start_piper_engine(port, session_tmp / "logs", EF_TTS_MAX_TEXT_CHARS="10")
    try:
        server = backend_factory(EF_TTS_URL=engine.url, EF_JOB_RETRY_BACKOFF_S="0.05")
        with client_for(server) as client:
            assert client.get("/api/v1/voices").status_code == 200
            created = client.post("/api/v1/jobs", json={"text": unique_text("Said on retry")})
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            failed = wait_job(client, job_id, until=("failed",), timeout=60)
            assert failed["error_reason"] == "rejected"
            assert failed["attempts"] == 1
            assert "HTTP 413" in str(failed["error"])
            listed = client.get("/api/admin/jobs/failed").json()
            assert [j["id"] for j in listed["data"]] == [job_id]
            assert client.get(f"/api/v1/jobs/{job_id}/audio").status_code == 409

            engine.stop()
            engine = start_piper_engine(port, session_tmp / "logs")  # fixed: default text limit
            retried = client.post(f"/api/admin/jobs/{job_id}/retry")
            assert retried.status_code == 200, retried.text
            assert retried.json()["status"] in ("queued", "running", "succeeded")
            assert retried.json()["error"] is None
            wait_job(client, job_id, timeout=60)
            audio = client.get(f"/api/v1/jobs/{job_id}/audio")
            assert audio.status_code == 200
            assert decode(audio.content, "wav").duration_s > 0.5
            assert client.get("/api/admin/jobs/failed").json()["count"] == 0

            again = client.post(f"/api/admin/jobs/{job_id}/retry")
            assert again.status_code == 409
            assert "succeeded" in str(error_of(again)["message"])
            unknown = client.post("/api/admin/jobs/" + "0" * 32 + "/retry")
            assert unknown.status_code == 404
    finally:
        engine.stop()


def test_cache_purge(backend: Server) -> None:
    with client_for(backend) as client:
        text = unique_text("Cached and then purged")
        assert client.post("/api/v1/speech", json={"text": text}).headers["x-ef-cache"] == "miss"
        assert client.post("/api/v1/speech", json={"text": text}).headers["x-ef-cache"] == "hit"
        ok_job = client.get("/api/v1/jobs", params={"limit": 1}).json()["data"][0]
        conflict = client.post(f"/api/admin/jobs/{ok_job['id']}/retry")
        assert conflict.status_code == 409
        purged = client.delete("/api/admin/cache")
        assert purged.status_code == 200
        assert purged.json()["removed"] >= 1
        assert client.get("/api/admin/cache").json()["entries"] == 0
        assert client.post("/api/v1/speech", json={"text": text}).headers["x-ef-cache"] == "miss"


def test_admin_lists_shows_and_cancels_jobs_of_every_client(backend: Server) -> None:
    with client_for(backend) as client:
        text = unique_text("Admin lists this")
        done = client.post("/api/v1/jobs", json={"text": text}).json()
        wait_job(client, done["id"])
        listed = client.get("/api/admin/jobs", params={"status": "succeeded", "limit": 200})
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert page["limit"] == 200 and page["offset"] == 0
        assert {j["status"] for j in page["data"]} == {"succeeded"}
        mine = next(j for j in page["data"] if j["id"] == done["id"])
        assert mine["client"] == "anonymous"
        assert str(mine["worker_id"]).count(":") == 3  # host:pid:token:index of who ran it
        assert mine["lease_until"] is None
        assert mine["audio_seconds"] > 0
        assert "text" not in mine and mine["text_chars"] == len(text)

        shown = client.get(f"/api/admin/jobs/{done['id']}")
        assert shown.status_code == 200
        assert shown.json()["id"] == done["id"] and shown.json()["engine"] == "piper"

        refused = client.delete(f"/api/admin/jobs/{done['id']}")
        assert refused.status_code == 409
        assert str(error_of(refused)["message"]) == (
            f"Job {done['id']} is succeeded; only a queued job can be cancelled."
        )
        missing = client.get("/api/admin/jobs/" + "0" * 32)
        assert missing.status_code == 404
        assert client.get("/api/admin/jobs", params={"status": "lost"}).status_code == 422


@pytest.mark.parametrize("path", ["/api/admin/jobs", "/api/admin/jobs/" + "0" * 32])
def test_admin_job_routes_denied_from_another_address(backend: Server, path: str) -> None:
    with _from("127.0.0.2", backend) as client:
        assert client.get(path).status_code == 403
        assert client.delete("/api/admin/jobs/" + "0" * 32).status_code == 403
