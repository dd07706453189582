"""Trusted proxies on a real backend: rate-limit buckets, the access log, start-up refusal.

(Which X-Forwarded-For values admit an admin: tests/backend/api/test_admin.py.)

The client side binds its own loopback source address, so 127.0.0.3 plays the proxy (the only
address in EF_TRUSTED_PROXIES) and 127.0.0.2 a LAN peer that is not trusted.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import httpx
import pytest

from tests.backend.conftest import BackendFactory
from tests.utils.poll import poll_until
from tests.utils.procs import VENV_BIN, Server, make_env

pytestmark = pytest.mark.server

PROXY = "127.0.0.3"
PEER = "127.0.0.2"
OTHER_PEER = "127.0.0.4"
RATE = 10


@pytest.fixture(scope="module")
def proxied(backend_factory: BackendFactory) -> Server:
    return backend_factory(
        EF_TRUSTED_PROXIES=f"{PROXY}/32",
        EF_ADMIN_CIDRS="127.0.0.1/32,192.168.1.0/24",
        EF_RATE_LIMIT=str(RATE),
    )


def _from(server: Server, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def test_rate_limit_per_relayed_client_and_not_per_header(proxied: Server) -> None:
    with _from(proxied, PROXY) as proxy:
        for _ in range(RATE):
            assert proxy.get("/api/v1/jobs", headers={"X-Forwarded-For": "192.168.7.1"}).is_success
        assert proxy.get(
            "/api/v1/jobs", headers={"X-Forwarded-For": "192.168.7.1"}
        ).status_code == (429)
        # Another client behind the same proxy has its own allowance.
        assert proxy.get("/api/v1/jobs", headers={"X-Forwarded-For": "192.168.7.2"}).is_success
    with _from(proxied, "127.0.0.5") as peer:
        statuses = [
            peer.get("/api/v1/jobs", headers={"X-Forwarded-For": f"10.9.9.{i}"}).status_code
            for i in range(RATE + 1)
        ]
        assert statuses == [200] * RATE + [429]  # rotating the header buys nothing


def test_refused_admin_requests_are_rate_limited(proxied: Server) -> None:
    with _from(proxied, OTHER_PEER) as peer:
        statuses = [peer.get("/api/admin/queue").status_code for _ in range(RATE + 1)]
        assert statuses == [403] * RATE + [429]


def test_access_log_names_the_address_the_authorisation_used(proxied: Server) -> None:
    """Two headers (the proxy appended its hop to the second): the log and the admin check
    both see 192.168.1.44, on routes with and without a caller dependency."""
    ids = {path: uuid.uuid4().hex for path in ("/api/admin/queue", "/health/live")}
    with _from(proxied, PROXY) as proxy:
        for path, request_id in ids.items():
            response = proxy.get(
                path,
                headers=[
                    ("X-Forwarded-For", "203.0.113.7"),
                    ("X-Forwarded-For", "192.168.1.44"),
                    ("X-Request-ID", request_id),
                ],
            )
            assert response.status_code == 200, response.text
    for request_id in ids.values():

        def access_lines(request_id: str = request_id) -> list[dict[str, object]]:
            # The access line is written once the answer is sent: maybe after the client read it.
            log = proxied.log_path.read_text().splitlines()
            return [json.loads(line) for line in log if request_id in line and "ef.access" in line]

        lines = poll_until(access_lines, timeout=10, what=f"the access line of {request_id}")
        assert [line["client_ip"] for line in lines] == ["192.168.1.44"]


def test_startup_refused_when_a_trusted_range_overlaps_the_admin_cidrs() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ef-backend"), "migrate"],
        env=make_env({"EF_TRUSTED_PROXIES": "172.16.0.0/12", "EF_ADMIN_CIDRS": "172.20.0.0/16"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "EF_TRUSTED_PROXIES 172.16.0.0/12 overlaps EF_ADMIN_CIDRS 172.20.0.0/16" in result.stderr
