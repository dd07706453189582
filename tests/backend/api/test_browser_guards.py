"""What a LAN browser can and cannot make the backend do, on a real backend.

DNS rebinding (a foreign Host), cross-site requests to the admin API, the optional admin token,
security headers, local Swagger UI assets, the frontend's own files only, the body limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.backend.api.helpers import client_for, error_of
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = pytest.mark.server

TOKEN = "admin-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def guarded(backend_factory: BackendFactory) -> Server:
    return backend_factory(
        EF_ALLOWED_HOSTS="localhost,echoforge.lan",
        EF_ADMIN_TOKEN=TOKEN,
        EF_MAX_BODY_BYTES=str(BODY_LIMIT),
    )


def test_foreign_host_names_are_refused(guarded: Server) -> None:
    with client_for(guarded) as client:
        for host in ("attacker.example", "echoforge.lan.attacker.example"):
            refused = client.get("/api/admin/queue", headers={"Host": host, **AUTH})
            assert refused.status_code == 400
            assert error_of(refused) == {
                "code": "invalid_host",
                "message": "Host not allowed; add its name to EF_ALLOWED_HOSTS.",
            }
        openai = client.get("/v1/models", headers={"Host": "attacker.example"})
        assert openai.status_code == 400
        assert openai.json()["error"]["code"] == "invalid_host"
        assert openai.json()["error"]["type"] == "invalid_request_error"
        for host in ("echoforge.lan:8080", "localhost", "127.0.0.1:80", "[::1]:8000"):
            assert client.get("/health/live", headers={"Host": host}).status_code == 200, host


def test_admin_token_is_required_when_set(guarded: Server) -> None:
    with client_for(guarded) as client:
        missing = client.get("/api/admin/queue")
        assert missing.status_code == 401
        assert error_of(missing)["message"] == (
            "The admin API needs 'Authorization: Bearer <token>' with EF_ADMIN_TOKEN."
        )
        wrong = client.get("/api/admin/queue", headers={"Authorization": "Bearer x" * 3})
        assert wrong.status_code == 401
        assert client.get("/api/admin/queue", headers=AUTH).status_code == 200


def test_cross_site_admin_writes_are_refused(guarded: Server) -> None:
    port = guarded.port
    with client_for(guarded) as client:
        # The CSRF of the review: a simple text/plain POST from another site.
        for headers in (
            {"Origin": "http://attacker.example", "Content-Type": "text/plain"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
        ):
            refused = client.post("/api/admin/jobs/nosuchjob/retry", headers={**AUTH, **headers})
            assert refused.status_code == 403, headers
            assert error_of(refused)["message"].startswith("Cross-site request refused")
        purge = client.delete("/api/admin/cache", headers={**AUTH, "Origin": "http://evil.lan"})
        assert purge.status_code == 403
        # Same origin (the admin page) and no browser at all (curl) get through to the handler.
        same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
        assert client.post(
            "/api/admin/jobs/nosuchjob/retry", headers={**AUTH, **same}
        ).status_code == (404)
        assert client.post("/api/admin/jobs/nosuchjob/retry", headers=AUTH).status_code == 404
        # Reading is not a state change: a foreign Origin on GET is answered.
        read = client.get("/api/admin/queue", headers={**AUTH, "Origin": "http://other.lan"})
        assert read.status_code == 200


def test_security_headers_on_api_and_pages(guarded: Server) -> None:
    with client_for(guarded) as client:
        for path in ("/health/live", "/api/v1/voices", "/", "/openapi.json", "/docs"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_swagger_ui_is_served_locally(guarded: Server) -> None:
    with client_for(guarded) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/") for s in sources), sources  # no CDN
        for source in sources:
            asset = client.get(source)
            assert asset.status_code == 200, source
            assert len(asset.content) > 1000, source
        assert (
            "'unsafe-inline'" not in page.headers["content-security-policy"].split("style-src")[0]
        )
        redoc = client.get("/redoc")
        assert redoc.status_code == 200
        assert client.get(re.findall(r'src="([^"]+)"', redoc.text)[0]).status_code == 200


def test_frontend_serves_only_its_own_assets(guarded: Server) -> None:
    with client_for(guarded) as client:
        assert client.get("/Dockerfile").status_code == 404
        assert client.get("/.dockerignore").status_code == 404
        index = client.get("/")
        assert index.status_code == 200
        assert "text/html" in index.headers["content-type"]


def test_request_body_limit(guarded: Server) -> None:
    big = b'{"text": "' + b"a" * (BODY_LIMIT * 4) + b'"}'
    with client_for(guarded) as client:
        declared = client.post(
            "/api/v1/jobs", content=big, headers={"Content-Type": "application/json"}
        )
        assert declared.status_code == 413
        assert error_of(declared)["message"] == (
            f"Content Too Large: the request body exceeds {BODY_LIMIT} bytes (EF_MAX_BODY_BYTES)."
        )

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 1024):
                yield big[start : start + 1024]

        chunked = client.post(
            "/api/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
        assert error_of(chunked)["message"] == error_of(declared)["message"]
        # The OpenAI routes answer in OpenAI's error shape, refused before or while reading.
        for content in (big, chunks()):
            openai = client.post(
                "/v1/audio/speech", content=content, headers={"Content-Type": "application/json"}
            )
            assert openai.status_code == 413
            assert openai.json()["error"] == {
                "message": error_of(declared)["message"],
                "type": "invalid_request_error",
                "param": None,
                "code": "http_413",
            }
