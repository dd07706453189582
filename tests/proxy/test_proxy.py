"""ef_proxy for real: Debian's nginx with proxy/*.template rendered as the image renders them,
in front of a running backend and the frontend on loopback. Client addresses 127.0.0.x stand
for LAN hosts: nginx sees each as a different client.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil
import pytest

from tests.proxy.conftest import (
    ACCEL_PREFIX,
    ADMIN_CLIENT,
    FLOOD_BYTES,
    OTHER_CLIENT,
    Edge,
    Stack,
)
from tests.utils.procs import REPO

pytestmark = pytest.mark.server

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


@contextmanager
def client(base: str, source: str = "127.0.0.1", **kwargs: object) -> Iterator[httpx.Client]:
    """An HTTP client whose connections come from ``source`` (a 127.0.0.x address)."""
    transport = httpx.HTTPTransport(local_address=source, verify=kwargs.pop("verify", True))  # type: ignore[arg-type]
    with httpx.Client(base_url=base, transport=transport, timeout=30, **kwargs) as c:  # type: ignore[arg-type]
        yield c


def _nginx_page(response: httpx.Response, status: int, reason: str) -> None:
    """An answer nginx made itself (its error page), not one it passed on from the backend."""
    assert response.status_code == status, response.text
    assert f"<title>{status} {reason}</title>" in response.text
    assert response.headers["server"] == "nginx"  # server_tokens off: no version


def _metric(backend_url: str, name: str, labels: str) -> float:
    text = httpx.get(backend_url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    return 0.0


# -- routing ---------------------------------------------------------------------------------


def test_routes_reach_frontend_and_backend(stack: Stack) -> None:
    with client(stack.http) as c:
        page = c.get("/")
        assert page.status_code == 200
        assert page.headers["x-test-upstream"] == "ef_frontend"
        assert "<html" in page.text.lower()

        voices = c.get("/api/v1/voices")
        assert voices.status_code == 200
        assert "x-test-upstream" not in voices.headers
        assert voices.headers["content-type"] == "application/json"

        models = c.get("/v1/models")
        assert models.status_code == 200
        assert "tts-1" in {m["id"] for m in models.json()["data"]}

        docs = c.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        assert c.get("/openapi.json").json()["info"]["title"]
        assert c.get("/health/ready").status_code == 200


def test_unknown_api_path_is_not_sent_to_the_frontend(stack: Stack) -> None:
    with client(stack.http) as c:
        _nginx_page(c.get("/api/v2/speech"), 404, "Not Found")


def test_metrics_refused_at_the_proxy(stack: Stack) -> None:
    with client(stack.http) as c:
        for path in ("/metrics", "/metrics/", "/metrics?format=json"):
            _nginx_page(c.get(path), 403, "Forbidden")
    # The backend itself serves them (to Prometheus on the internal network).
    assert httpx.get(stack.backend.url + "/metrics", timeout=10).status_code == 200


def test_admin_from_allowed_address_only(stack: Stack) -> None:
    with client(stack.http, ADMIN_CLIENT) as c:
        allowed = c.get("/api/admin/queue")
        assert allowed.status_code == 200, allowed.text
        # A client's own X-Forwarded-For is replaced: the backend sees the real address too.
        spoof_down = c.get("/api/admin/queue", headers={"X-Forwarded-For": OTHER_CLIENT})
        assert spoof_down.status_code == 200, spoof_down.text
    with client(stack.http, OTHER_CLIENT) as c:
        _nginx_page(c.get("/api/admin/queue"), 403, "Forbidden")
        spoofed = c.get("/api/admin/queue", headers={"X-Forwarded-For": ADMIN_CLIENT})
        _nginx_page(spoofed, 403, "Forbidden")
        spoofed_real_ip = c.get("/api/admin/cache", headers={"X-Real-IP": ADMIN_CLIENT})
        _nginx_page(spoofed_real_ip, 403, "Forbidden")


def test_admin_page_from_allowed_address_only(stack: Stack) -> None:
    admin_page = (REPO / "frontend" / "admin" / "index.html").read_text()
    refused_page = (REPO / "frontend" / "403.html").read_text()
    with client(stack.http, ADMIN_CLIENT) as c:
        moved = c.get("/admin")
        assert (moved.status_code, moved.headers["location"]) == (301, "/admin/")
        page = c.get("/admin/")
        assert page.status_code == 200
        assert page.text == admin_page
    with client(stack.http, OTHER_CLIENT) as c:
        refused = c.get("/admin/", headers={"X-Forwarded-For": ADMIN_CLIENT})
        assert refused.status_code == 403
        assert refused.text == refused_page


def test_unknown_host_names_are_refused(stack: Stack) -> None:
    with client(stack.http) as c:
        for host in ("echoforge.test", "ECHOFORGE.test:8080", "192.168.1.10:8080", "[fd00::1]"):
            assert c.get("/health/live", headers={"Host": host}).status_code == 200, host
        refused = c.get("/health/live", headers={"Host": "evil.example"})
        _nginx_page(refused, 421, "Misdirected Request")


# -- limits and headers ---------------------------------------------------------------------


def test_request_body_limit(stack: Stack) -> None:
    big = b'{"text": "' + b"a" * (1024 * 1024 + 1) + b'"}'
    with client(stack.http) as c:
        response = c.post(
            "/api/v1/speech", content=big, headers={"Content-Type": "application/json"}
        )
    _nginx_page(response, 413, "Request Entity Too Large")


def test_security_headers_on_every_answer(stack: Stack) -> None:
    with client(stack.http) as c:
        answers = [c.get("/"), c.get("/api/v1/voices"), c.get("/metrics"), c.get("/health/live")]
    for response in answers:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get_list(name) == [value], (response.url, name)
        # HSTS only over HTTPS.
        assert "strict-transport-security" not in response.headers


def test_tls_server_block(stack: Stack) -> None:
    verify = ssl.create_default_context(cafile=str(stack.ca))
    with client(stack.https, verify=verify) as c:
        live = c.get("/health/live")
        assert live.status_code == 200
        assert live.headers["strict-transport-security"] == "max-age=31536000"
        assert live.headers["x-content-type-options"] == "nosniff"
        voices = c.get("/api/v1/voices")
        assert voices.status_code == 200
        _nginx_page(c.get("/metrics"), 403, "Forbidden")
    # A name outside EF_ALLOWED_HOSTS gets no TLS handshake at all.
    port = stack.https.rsplit(":", 1)[1]
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with (
        client(f"https://127.0.0.1:{port}", verify=unverified) as c,
        pytest.raises(httpx.ConnectError, match=r"UNRECOGNIZED_NAME|unrecognized name"),
    ):
        c.get("/health/live", extensions={"sni_hostname": "evil.example"})


# -- audio ----------------------------------------------------------------------------------


def test_streamed_speech_through_the_proxy(stack: Stack) -> None:
    body = {"text": f"Streaming through the proxy {uuid.uuid4().hex[:6]}.", "stream": True}
    with (
        client(stack.http) as c,
        c.stream("POST", "/api/v1/speech", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.read()[:4] == b"RIFF"


def test_cached_audio_is_sent_by_nginx(stack: Stack) -> None:
    body = {"text": f"Sent by nginx itself {uuid.uuid4().hex[:8]}."}
    hits_before = _metric(stack.backend.url, "ef_audio_cache_requests_total", 'result="hit"')
    with client(stack.http) as c:
        first = c.post("/api/v1/speech", json=body)
        assert first.status_code == 200, first.text
        assert first.headers.get_list("x-ef-cache") == ["miss"]

        again = c.post("/api/v1/speech", json=body)
        assert again.status_code == 200, again.text
        assert again.headers.get_list("x-ef-cache") == ["hit"]
        assert again.headers["content-type"] == "audio/wav"
        assert "x-accel-redirect" not in again.headers
        assert again.content == first.content
        for name, value in SECURITY_HEADERS.items():
            assert again.headers.get_list(name) == [value], name

        # A job's audio is a cache file too: nginx sends it as well.
        job_audio = c.get(f"/api/v1/jobs/{first.headers['x-ef-job-id']}/audio")
        assert job_audio.status_code == 200, job_audio.text
        assert job_audio.headers.get_list("x-ef-cache") == ["hit"]
        assert job_audio.content == first.content

        # nginx serves ranges of the file.
        part = c.post("/api/v1/speech", json=body, headers={"Range": "bytes=0-3"})
        assert part.status_code == 206
        assert part.content == b"RIFF"
    # The backend still decided and counted the requests' hits (the job fetch is no lookup).
    hits_after = _metric(stack.backend.url, "ef_audio_cache_requests_total", 'result="hit"')
    assert hits_after - hits_before == 2

    # What the backend answered: no audio, only where nginx finds it.
    direct = httpx.post(stack.backend.url + "/api/v1/speech", json=body, timeout=30)
    assert direct.status_code == 200
    assert direct.content == b""
    target = direct.headers["x-accel-redirect"]
    assert target.startswith(ACCEL_PREFIX) and target.endswith(".wav")
    assert (stack.cache_dir / target.removeprefix(ACCEL_PREFIX)).read_bytes() == first.content
    job_id = first.headers["x-ef-job-id"]
    direct_job = httpx.get(f"{stack.backend.url}/api/v1/jobs/{job_id}/audio", timeout=30)
    assert (direct_job.content, direct_job.headers["x-accel-redirect"]) == (b"", target)
    # The internal location is not reachable from outside.
    with client(stack.http) as c:
        _nginx_page(c.get(target), 404, "Not Found")


def test_cached_openai_audio_is_sent_by_nginx(stack: Stack) -> None:
    body = {"model": "tts-1", "input": f"OpenAI hit {uuid.uuid4().hex[:8]}.", "voice": "alloy"}
    with client(stack.http) as c:
        first = c.post("/v1/audio/speech", json=body)
        assert first.status_code == 200, first.text
        again = c.post("/v1/audio/speech", json=body)
    assert again.status_code == 200
    assert again.headers.get_list("x-ef-cache") == ["hit"]
    assert again.headers["content-type"] == "audio/mpeg"
    assert again.content == first.content


# -- the limits, against a scripted upstream ------------------------------------------------


def test_streamed_audio_is_not_buffered(edge: Edge) -> None:
    """A client that stops reading stops the upstream too: nginx passes audio on as it comes
    instead of soaking the whole answer up into its buffers and temp files (proxy_buffering on
    would take all 64 MiB from the upstream while the client reads nothing)."""
    for path in ("/api/v1/flood", "/v1/flood"):
        edge.flood_done.clear()
        with (
            client(edge.url, "127.0.0.4") as c,
            c.stream("POST", path, content=b"{}") as response,
        ):
            assert response.status_code == 200
            assert edge.flood_done.wait(60), "the upstream neither finished nor blocked"
    assert len(edge.flooded) == 2
    assert all(sent < FLOOD_BYTES // 2 for sent in edge.flooded), edge.flooded


def test_read_timeout(edge: Edge) -> None:
    with client(edge.url, "127.0.0.5") as c:
        _nginx_page(c.post("/api/v1/stall", content=b"{}"), 504, "Gateway Time-out")


def test_body_limit_setting(edge: Edge) -> None:
    with client(edge.url, "127.0.0.6") as c:
        assert c.post("/api/v1/echo", content=b"x" * 1000).status_code == 200
        _nginx_page(c.post("/api/v1/echo", content=b"x" * 2048), 413, "Request Entity Too Large")


def test_request_rate_limit(edge: Edge) -> None:
    with client(edge.url, "127.0.0.7") as c:
        statuses = [c.get("/api/v1/voices").status_code for _ in range(4)]
    # rate 2r/s with a burst of 1: the first two pass at once, then the client must slow down.
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    # Another client is not affected.
    with client(edge.url, "127.0.0.8") as c:
        assert c.get("/api/v1/voices").status_code == 200


def test_connection_limit(edge: Edge) -> None:
    """One open connection per client here: a second, while the first stalls, is refused."""

    results: list[int] = []
    with client(edge.url, "127.0.0.9") as slow:
        stalled = threading.Thread(
            target=lambda: results.append(slow.post("/api/v1/stall", content=b"{}").status_code)
        )
        stalled.start()
        try:
            with client(edge.url, "127.0.0.9") as c:
                for _ in range(50):  # until the stalled request is open in nginx
                    second = c.get("/health/live")
                    if second.status_code == 429:
                        break
                    threading.Event().wait(0.02)
        finally:
            stalled.join()
    assert second.status_code == 429
    assert results == [504]


# -- scripts/smoke.sh (CI's check of the compose stack), against the same proxy ---------------


def _smoke(url: str) -> subprocess.CompletedProcess[str]:
    script = str(REPO / "scripts" / "smoke.sh")
    return subprocess.run([script, url], capture_output=True, text=True, timeout=180, check=False)


def test_smoke_script_passes_on_the_stack(stack: Stack) -> None:
    result = _smoke(stack.http)
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith("smoke: all checks passed")


def test_smoke_script_fails_on_a_wrong_stack(edge: Edge) -> None:
    result = _smoke(edge.url)
    assert result.returncode == 1
    assert "smoke: FAILED: synthesis did not return a WAV" in result.stderr


# -- upstream keep-alive ---------------------------------------------------------------------


def _upstream_connections(stack: Stack) -> set[tuple[int, str]]:
    """(nginx's local port, TCP state) of every connection between nginx and the backend, as
    the kernel lists them (closed ones in TIME_WAIT too, on the side that closed first)."""
    backend = stack.backend.port
    found: set[tuple[int, str]] = set()
    for conn in psutil.net_connections(kind="tcp4"):
        if not conn.raddr:
            continue
        if conn.raddr.port == backend:  # nginx's end
            found.add((conn.laddr.port, f"nginx:{conn.status}"))
        elif conn.laddr.port == backend:  # the backend's end
            found.add((conn.raddr.port, f"backend:{conn.status}"))
    return found


def test_nginx_drops_idle_backend_connections_before_the_backend_does(stack: Stack) -> None:
    """uvicorn closes a keep-alive connection after 5 s idle (``ef serve``: KEEP_ALIVE_S). Were
    nginx to keep it longer (its default is 60 s), a request it sends just as uvicorn closes
    would be lost, and a POST is not retried: a 502. So nginx must close first: the connection
    it used for a request ends, after the idle time, in TIME_WAIT on nginx's side (the side
    that closes first keeps that state), never on the backend's."""
    with client(stack.http) as c:
        assert c.post("/api/v1/speech", json={"text": ""}).status_code == 422
    used = {port for port, state in _upstream_connections(stack) if state == "nginx:ESTABLISHED"}
    assert used, _upstream_connections(stack)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        states = {s for port, s in _upstream_connections(stack) if port in used}
        if all(s.endswith(":TIME_WAIT") for s in states):  # both ends done closing
            break
        time.sleep(0.2)
    closed = {(port, s) for port, s in _upstream_connections(stack) if port in used}
    assert {s for _, s in closed} == {"nginx:TIME_WAIT"}, closed
