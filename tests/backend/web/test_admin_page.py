"""The admin page (``/admin``) in headless Chromium against the real backend and real Piper.

It shows every health check with its timing, the queue, failed jobs with their reason, the
cache, recent errors and the configured monitoring links; it retries a failed job, cancels a
queued one and purges the cache after a confirmation; all by keyboard, under a strict CSP, with
no console error. A browser outside EF_ADMIN_CIDRS (through a relay from 127.0.0.2) gets the
403 page and no admin request is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.backend.api.helpers import client_for, long_text, unique_text, wait_job
from tests.backend.conftest import BackendFactory
from tests.backend.web.conftest import PHONE, OpenPage, reachable_controls, tab_through
from tests.utils.procs import Server
from tests.utils.relay import Relay

pytestmark = [pytest.mark.server, pytest.mark.slow]

LINKS = {
    "Grafana": "http://grafana.lan:3000/d/echoforge",
    "Prometheus": "http://prometheus.lan:9090/",
    "Alertmanager": "http://alertmanager.lan:9093/",
    "Runbooks": "https://git.lan/echoforge/-/tree/main/runbooks",
}


@pytest.fixture(scope="module")
def admin_backend(backend_factory: BackendFactory) -> Server:
    """Admin only from 127.0.0.1; the backend allows speed 8 but the engine (EF_TTS_MAX_SPEED
    4) refuses it: a real, permanent failure that the admin can retry."""
    return backend_factory(
        EF_ADMIN_CIDRS="127.0.0.1/32",
        EF_MAX_SPEED="8",
        EF_GRAFANA_URL=LINKS["Grafana"],
        EF_PROMETHEUS_URL=LINKS["Prometheus"],
        EF_ALERTMANAGER_URL=LINKS["Alertmanager"],
        EF_RUNBOOKS_URL=LINKS["Runbooks"],
    )


@pytest.fixture(scope="module")
def failed_job(admin_backend: Server) -> dict[str, object]:
    with client_for(admin_backend) as client:
        created = client.post("/api/v1/jobs", json={"text": unique_text("Too fast"), "speed": 6})
        assert created.status_code == 202, created.text
        job = wait_job(client, created.json()["id"], until=("failed",), timeout=60)
    assert job["error_reason"] == "rejected", job
    return job


@pytest.fixture
def admin(open_page: OpenPage, admin_backend: Server) -> Iterator[Page]:
    watched = open_page(admin_backend.url + "/admin")
    yield watched.page
    watched.assert_clean()


def _short(job_id: object) -> str:
    return f"{str(job_id)[:8]}…"


def test_the_page_shows_health_queue_failures_cache_errors_and_links(
    admin: Page, failed_job: dict[str, object]
) -> None:
    checks = admin.locator("#checks tr")
    expect(checks).to_have_count(7)  # api, database, queue, engine + database, engine, cache
    for name in ("api", "database", "queue", "engine", "cache"):
        row = checks.filter(has=admin.locator("th", has_text=re.compile(f"^{name} ")))
        expect(row.first).to_contain_text("OK")
        expect(row.first.locator("td").nth(1)).to_have_text(re.compile(r"^\d+\.\d ms$"))
    engine = admin.locator("#engine")
    expect(engine).to_contain_text("piper")
    expect(engine).to_contain_text("en_US-joe-medium")
    expect(admin.locator("#queue")).to_contain_text(re.compile(r"Queued\s*\d+ of 100"))

    failed = admin.locator("#failed tr")
    row = failed.filter(has_text=_short(failed_job["id"]))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("rejected")
    expect(row).to_contain_text(str(failed_job["error"]))
    expect(row.get_by_role("button", name=f"Retry job {_short(failed_job['id'])}")).to_be_visible()

    expect(admin.locator("#cache")).to_contain_text("Hit ratio")
    logged = admin.locator("#errors tr").filter(has_text=f"job_id={failed_job['id']}")
    expect(logged.first).to_contain_text(f"job failed (job_id={failed_job['id']}, reason=rejected")
    expect(logged.first).to_contain_text("warning")
    for label, url in LINKS.items():
        expect(admin.get_by_role("link", name=label)).to_have_attribute("href", url)

    expected = reachable_controls(admin)
    reached = tab_through(admin)
    assert expected <= set(reached), expected - set(reached)
    assert [k for k, visible in reached.items() if not visible] == []
    assert any(k.startswith("button:Retry job") for k in reached)


def test_retry_puts_a_failed_job_back_in_the_queue(
    admin: Page, admin_backend: Server, failed_job: dict[str, object]
) -> None:
    button = admin.get_by_role("button", name=f"Retry job {_short(failed_job['id'])}")
    button.focus()
    admin.keyboard.press("Enter")
    expect(admin.locator("#status")).to_have_text(
        re.compile(rf"Job {re.escape(_short(failed_job['id']))} is (queued|running|failed) again\.")
    )
    expect(admin.locator("#failed-title")).to_be_focused()
    with client_for(admin_backend) as client:
        # It ran again (and the engine refused it again: same speed).
        again = wait_job(client, str(failed_job["id"]), until=("failed",), timeout=60)
    assert str(again["finished_at"]) > str(failed_job["finished_at"])


def test_purge_asks_first_then_empties_the_cache(admin: Page, admin_backend: Server) -> None:
    with client_for(admin_backend) as client:
        spoken = client.post("/api/v1/speech", json={"text": unique_text("Cached for the purge")})
        assert spoken.status_code == 200
        entries = client.get("/api/admin/cache").json()["entries"]
    admin.get_by_role("button", name="Refresh now").click()
    cache = admin.locator("#cache")
    expect(cache).to_contain_text(f"Entries{entries}")

    purge = admin.get_by_role("button", name="Purge the cache…")
    purge.click()
    dialog = admin.get_by_role("dialog", name="Purge the audio cache?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"This deletes all {entries} cached audio files")
    admin.keyboard.press("Escape")  # changed my mind
    expect(dialog).to_be_hidden()
    expect(admin.locator("#status")).to_have_text("The cache was kept.")
    expect(purge).to_be_focused()
    assert httpx.get(f"{admin_backend.url}/api/admin/cache").json()["entries"] == entries

    purge.click()
    dialog.get_by_role("button", name="Purge", exact=True).click()
    expect(admin.locator("#status")).to_have_text(f"Cache purged: {entries} entries removed.")
    expect(cache).to_contain_text("Entries0")
    expect(purge).to_be_disabled()
    assert httpx.get(f"{admin_backend.url}/api/admin/cache").json()["entries"] == 0


def test_cancel_takes_a_waiting_job_off_the_queue(admin: Page, admin_backend: Server) -> None:
    with client_for(admin_backend) as client:
        ids = [
            client.post("/api/v1/jobs", json={"text": long_text(5)}).json()["id"]
            for _ in range(4)  # two workers: at least two wait
        ]
        admin.get_by_role("button", name="Refresh now").click()
        button = admin.locator("#active").get_by_role("button", name=re.compile("^Cancel job"))
        expect(button.first).to_be_visible()
        label = button.last.get_attribute("aria-label")
        assert label is not None
        target = next(i for i in ids if label == f"Cancel job {_short(i)}")
        button.last.click()
        expect(admin.locator("#status")).to_have_text(f"Job {_short(target)} cancelled.")
        assert client.get(f"/api/v1/jobs/{target}").json()["status"] == "cancelled"
        for job_id in ids:
            if client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued":
                client.delete(f"/api/v1/jobs/{job_id}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(
    open_page: OpenPage, admin_backend: Server, failed_job: dict[str, object], scheme: str
) -> None:
    for device, viewport in (("desktop", None), ("phone", PHONE)):
        kwargs = {"color_scheme": scheme} | ({"viewport": viewport} if viewport else {})
        watched = open_page(admin_backend.url + "/admin", **kwargs)
        width = watched.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= (viewport or {"width": 1280})["width"]  # no sideways scrolling
        shot = watched.screenshot(f"admin-{device}-{scheme}", full_page=viewport is None)
        assert shot.stat().st_size > 10_000
        watched.assert_clean()


def test_outside_the_admin_cidrs_the_page_is_a_clear_403(
    open_page: OpenPage, admin_backend: Server
) -> None:
    relay = Relay(admin_backend.port, source="127.0.0.2")
    try:
        for scheme in ("light", "dark"):
            watched = open_page(relay.url + "/admin", color_scheme=scheme, wait_ready=False)
            page = watched.page
            expect(page).to_have_title("403: admin page not available here · EchoForge")
            heading = page.get_by_role(
                "heading", name="403: the admin page is not open to your address"
            )
            expect(heading).to_be_visible()
            expect(page.locator("main")).to_contain_text("EF_ADMIN_CIDRS")
            expect(page.get_by_role("link", name="Go to the speech page")).to_have_attribute(
                "href", "/"
            )
            response = page.request.get(relay.url + "/admin")
            assert response.status == 403
            loaded = page.evaluate(
                "() => performance.getEntriesByType('resource').map((e) => e.name)"
            )
            assert loaded and not [url for url in loaded if "/api/" in url], loaded
            watched.screenshot(f"admin-403-{scheme}")
            # The document itself is the 403 (Chromium logs that); nothing else failed.
            watched.assert_clean(r"status of 403 \(Forbidden\)")
            assert len(watched.console_errors) <= 1
        # The same backend still serves the admin page to 127.0.0.1.
        assert httpx.get(f"{admin_backend.url}/admin").status_code == 200
    finally:
        relay.close()


ADMIN_TOKEN = "admin-page-token-0123456789abcdef"


def test_with_an_admin_token_the_page_asks_for_it(
    open_page: OpenPage, backend_factory: BackendFactory
) -> None:
    server = backend_factory(EF_ADMIN_TOKEN=ADMIN_TOKEN)
    watched = open_page(server.url + "/admin")
    page = watched.page
    form = page.locator("#token-form")
    expect(form).to_be_visible()
    expect(page.locator("#token-hint")).to_have_text(
        "This server needs its admin token (EF_ADMIN_TOKEN) for the admin API."
    )
    expect(page.locator("#admin-token")).to_be_focused()
    page.keyboard.type("not-the-token-0123456789abcdef")
    page.keyboard.press("Enter")
    expect(page.locator("#token-hint")).to_contain_text("The admin token was not accepted")
    page.fill("#admin-token", ADMIN_TOKEN)
    page.keyboard.press("Enter")
    expect(form).to_be_hidden()
    expect(page.locator("#checks tr").first).to_contain_text("OK")
    expect(page.locator("#failed-empty")).to_be_visible()
    # Each refused admin call logged a 401 in the console; nothing else went wrong.
    watched.assert_clean(r"status of 401 \(Unauthorized\)")
