"""The frontend image's nginx configuration (frontend/nginx.conf) run by Debian's nginx, with the
pages in Chromium under the Content-Security-Policy that nginx sends (none added by the test).

In the compose stack ef_proxy sends ``/api`` and ``/health`` to the backend and the rest to this
server; here the same nginx gets two extra locations for that, so the pages reach the real
backend from one origin as they do behind the proxy (no Docker here to run the stack itself).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.backend.api.helpers import unique_text
from tests.backend.web.conftest import STRICT_CSP
from tests.proxy.nginx import NGINX, nginx_conf
from tests.utils.procs import REPO, Server, free_port, start_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

CONF = REPO / "frontend" / "nginx.conf"


def _render(port: int, backend_port: int) -> str:
    """frontend/nginx.conf on a loopback port, serving the repository's frontend/."""
    text = CONF.read_text()
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    text = text.replace("root /usr/share/nginx/html;", f"root {REPO / 'frontend'};")
    upstream = (
        f"    location ~ ^/(api|health) {{ proxy_pass http://127.0.0.1:{backend_port}; "
        "proxy_buffering off; }\n}\n"
    )
    head, _, _ = text.rpartition("}")
    return head + upstream


@pytest.fixture(scope="module")
def frontend_nginx(backend: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    out: Path = tmp_path_factory.mktemp("frontend-nginx")
    (out / "conf.d").mkdir()
    port = free_port()
    (out / "conf.d" / "frontend.conf").write_text(_render(port, backend.port))
    conf = nginx_conf(out)
    check = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(out)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    server = start_server(
        "frontend-nginx",
        [NGINX, "-c", str(conf), "-p", str(out), "-g", "daemon off;"],
        port=port,
        log_dir=out,
    )
    try:
        yield server.wait_ready("/", timeout=30)
    finally:
        server.stop()


def test_every_page_and_asset_carries_the_strict_csp(frontend_nginx: Server) -> None:
    with httpx.Client(base_url=frontend_nginx.url) as client:
        for path in ("/", "/admin/", "/403.html", "/assets/speech.js", "/assets/style.css"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == STRICT_CSP, path
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (
            client.get("/assets/speech.js")
            .headers["content-type"]
            .startswith(("application/javascript", "text/javascript"))
        )
        moved = client.get("/admin")
        assert moved.status_code == 301
        assert moved.headers["location"] == "/admin/"  # relative: right behind any proxy
        assert client.get("/nothing-here").status_code == 404


def test_the_pages_work_under_the_csp_nginx_sends(browser: Browser, frontend_nginx: Server) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(frontend_nginx.url + "/")
        page.wait_for_selector("html[data-ready]", state="attached")
        page.fill("#text", unique_text("Spoken through the frontend server"))
        page.click("#speak")
        expect(page.locator("#status")).to_contain_text(
            re.compile("Synthesised|From the cache"), timeout=60_000
        )
        assert page.evaluate("() => document.getElementById('player').duration") > 0
        page.goto(frontend_nginx.url + "/admin/")
        page.wait_for_selector("html[data-ready]", state="attached")
        expect(page.locator("#checks tr").first).to_contain_text("OK")
        assert problems == []
    finally:
        context.close()
