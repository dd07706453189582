"""The web UI in a real browser (Debian's Chromium driven by Playwright) against the real
backend and the real Piper engine: voices load, Speak plays audio, API keys are honoured."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.backend.api.helpers import unique_text
from tests.backend.conftest import BackendFactory
from tests.utils.procs import Server

pytestmark = [pytest.mark.server, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
API_KEY = "webui-test-key-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def _speak(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#speak")


def _played_audio_bytes(page: Page) -> int:
    """Size of the audio the player holds (its blob URL fetched inside the page)."""
    return int(
        page.evaluate(
            """async () => {
                const src = document.getElementById("player").src;
                const buf = await (await fetch(src)).arrayBuffer();
                return buf.byteLength;
            }"""
        )
    )


def test_voices_load_and_speak_plays_audio(page: Page, backend: Server) -> None:
    page.goto(backend.url + "/")
    expect(page.locator("#voice option")).not_to_have_count(0, timeout=30_000)
    assert "en_US-joe-medium" in page.locator("#voice option").all_inner_texts()[0]

    _speak(page, unique_text("The web interface speaks this sentence"))
    expect(page.locator("#status")).to_contain_text("Done in", timeout=60_000)
    expect(page.locator("#status")).to_contain_text("cache miss")
    player = page.locator("#player")
    expect(player).to_be_visible()
    assert _played_audio_bytes(page) > 10_000
    duration = page.wait_for_function(
        "() => { const d = document.getElementById('player').duration; return d > 0 && d; }",
        timeout=10_000,
    ).json_value()
    assert 0.5 < float(duration) < 30


def test_errors_are_shown_not_swallowed(page: Page, backend: Server) -> None:
    page.goto(backend.url + "/")
    expect(page.locator("#voice option")).not_to_have_count(0, timeout=30_000)
    page.fill("#speed", "9")  # beyond the API's limit; the browser sends it anyway on submit
    page.evaluate("document.getElementById('speed').removeAttribute('max')")
    _speak(page, unique_text("Too fast to be accepted"))
    status = page.locator("#status")
    expect(status).to_contain_text("Error 422", timeout=30_000)
    expect(status).to_contain_text("speed")
    expect(status).to_have_class(re.compile(r"\berror\b"))


def test_api_key_field_is_sent_as_bearer_key(page: Page, backend_factory: BackendFactory) -> None:
    keyed = backend_factory(EF_API_KEYS=f"webui:{API_KEY}")
    page.goto(keyed.url + "/")
    expect(page.locator("#voice option")).not_to_have_count(0, timeout=30_000)

    _speak(page, unique_text("Without a key this is refused"))
    expect(page.locator("#status")).to_contain_text("Error 401", timeout=30_000)

    page.click("details summary")
    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    _speak(page, unique_text("With the key this is spoken"))
    expect(page.locator("#status")).to_contain_text("Done in", timeout=60_000)
    assert _played_audio_bytes(page) > 10_000

    # The key is remembered by this browser across reloads, and only there.
    page.reload()
    assert page.input_value("#api-key") == API_KEY
