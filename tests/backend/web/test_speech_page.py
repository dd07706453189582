"""The speech page (``/``) in headless Chromium against the real backend and real Piper.

Speaking plays audio and offers a download, the second time comes from the cache, a long text
plays before it is fully synthesised and shows its progress, a queued request shows its place
and can be cancelled, errors (too long, engine down, queue full, key missing) say what to do and
keep the text, the history replays; all of it by keyboard, under a strict CSP, with no console
error.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.backend.api.helpers import client_for, decode, long_text, unique_text
from tests.backend.conftest import BackendFactory
from tests.backend.web.conftest import PHONE, OpenPage, reachable_controls, tab_through
from tests.utils.procs import Server

pytestmark = [pytest.mark.server, pytest.mark.slow]

API_KEY = "webui-test-key-0123456789"


def _duration(page: Page) -> float:
    """The player's duration once it is known and finite (MediaSource reports it at the end)."""
    handle = page.wait_for_function(
        """() => { const d = document.getElementById("player").duration;
                   return Number.isFinite(d) && d > 0 && d; }"""
    )
    return float(handle.json_value())


def _speak(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#speak")


def _done(page: Page) -> None:
    expect(page.locator("#speak")).to_be_enabled()
    expect(page.locator("#error")).to_be_hidden()


def test_speak_plays_downloads_and_then_hits_the_cache(
    open_page: OpenPage, backend: Server
) -> None:
    watched = open_page(backend.url + "/")
    page = watched.page
    expect(page.locator("#voice option")).to_have_count(1)
    expect(page.locator("#voice")).to_have_value("en_US-joe-medium")
    expect(page.locator("#voice-info")).to_have_text("Language: en_US · 22,050 Hz · engine piper")
    expect(page.locator("#format")).to_have_value("mp3")

    text = unique_text("The web page speaks this sentence")
    _speak(page, text)
    _done(page)
    status = page.locator("#status")
    expect(status).to_contain_text("Synthesised (not in the cache) in")
    assert 0.5 < _duration(page) < 30
    expect(page.locator("#player")).to_have_attribute("data-cache", "miss")

    link = page.locator("#download")
    expect(link).to_be_visible()
    name = link.get_attribute("download")
    assert name is not None
    assert re.fullmatch(r"echoforge-the-web-page-speaks-this-sentence-en_US-joe-medium\.mp3", name)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == name
    saved = download.path()
    assert decode(saved.read_bytes(), "mp3").duration_s > 0.5

    _speak(page, text)
    _done(page)
    expect(status).to_contain_text("From the cache (already spoken before)")
    expect(page.locator("#player")).to_have_attribute("data-cache", "hit")
    assert _duration(page) > 0.5
    expect(page.locator("#text")).to_have_value(text)
    watched.assert_clean()


def test_a_long_text_plays_before_it_is_synthesised_and_shows_progress(
    open_page: OpenPage, backend: Server
) -> None:
    watched = open_page(backend.url + "/")
    page = watched.page
    _speak(page, long_text(12))
    expect(page.locator("#progress-text")).to_have_text(
        re.compile(r"Synthesising sentence ([1-9]|1[0-2]) of 12\.")
    )
    page.wait_for_function(
        """() => { const p = document.getElementById("player");
                   return p.currentTime > 0 && !p.paused && p.dataset.jobId; }"""
    )
    job_id = page.locator("#player").get_attribute("data-job-id")
    job = httpx.get(f"{backend.url}/api/v1/jobs/{job_id}", timeout=10).json()
    # Sound is coming out while the engine still works on later sentences.
    assert job["status"] == "running", job
    assert job["sentences_done"] < job["sentences_total"] == 12
    expect(page.locator("#status")).to_have_text("Playing while the rest is synthesised…")
    expect(page.locator("#speak")).to_be_disabled()
    expect(page.locator("#cancel")).to_be_visible()
    _done(page)
    expect(page.locator("#status")).to_contain_text("playback started after")
    assert _duration(page) > 20  # twelve long sentences
    watched.assert_clean()


def test_an_over_long_text_says_so_and_keeps_the_text(open_page: OpenPage, backend: Server) -> None:
    watched = open_page(backend.url + "/")
    page = watched.page
    text = "A" * 4990 + " long text."  # 5001 characters against EF_MAX_TEXT_CHARS=5000
    page.fill("#text", text)
    counter = page.locator("#counter")
    expect(counter).to_have_text("5,001 / 5,000 characters: 1 too many")
    expect(counter).to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#text")).to_have_attribute("aria-invalid", "true")
    page.click("#speak")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("The text is too long.")
    expect(error).to_contain_text(
        "It has 5,001 characters; this server accepts at most 5,000. Shorten it by 1 characters"
    )
    expect(page.locator("#text")).to_have_value(text)
    expect(page.locator("#text")).to_be_focused()
    page.fill("#text", "Short again.")
    expect(counter).to_have_text("12 / 5,000 characters")
    watched.assert_clean()


def test_the_limit_comes_from_the_server(
    open_page: OpenPage, backend_factory: BackendFactory
) -> None:
    server = backend_factory(EF_MAX_TEXT_CHARS="40", EF_MAX_SPEED="2")
    watched = open_page(server.url + "/")
    page = watched.page
    page.fill("#text", "x" * 41)
    expect(page.locator("#counter")).to_have_text("41 / 40 characters: 1 too many")
    expect(page.locator("#speed")).to_have_attribute("max", "2")
    expect(page.locator("#speed-hint")).to_have_text("1 is normal; 0.25 to 2.")
    watched.assert_clean()


def test_engine_down_says_when_to_retry_and_keeps_the_text(
    open_page: OpenPage, dead_engine_backend: Server
) -> None:
    watched = open_page(dead_engine_backend.url + "/")
    page = watched.page
    expect(page.locator("#voice-info")).to_contain_text("Voices could not be loaded")
    text = unique_text("Nobody is there to say this")
    _speak(page, text)
    error = page.locator("#error")
    expect(error).to_contain_text("The speech engine is not available.")
    expect(error).to_contain_text(re.compile(r"Try again in \d+ s\."))
    expect(page.locator("#status")).to_have_text("Not spoken. Your text is still in the text box.")
    expect(page.locator("#text")).to_have_value(text)
    expect(page.locator("#speak")).to_be_enabled()
    # The voices and the speech request answered 503 (the browser logs both); nothing else.
    watched.assert_clean(r"status of 503 \(Service Unavailable\)")
    assert len(watched.console_errors) == 2


@pytest.fixture(scope="module")
def busy_backend(backend_factory: BackendFactory) -> Server:
    """One worker and room for one queued job: easy to fill."""
    return backend_factory(EF_TTS_CONCURRENCY="1", EF_QUEUE_MAX="1")


def test_a_queued_request_shows_its_place_and_can_be_cancelled(
    open_page: OpenPage, busy_backend: Server
) -> None:
    watched = open_page(busy_backend.url + "/")
    page = watched.page
    with client_for(busy_backend) as client:
        blocker = client.post("/api/v1/jobs", json={"text": long_text(10)}).json()["id"]
        text = unique_text("Waiting behind a long job")
        _speak(page, text)
        expect(page.locator("#progress-text")).to_contain_text("Queued: 1st in line")
        job_id = page.locator("#player").get_attribute("data-job-id")
        assert job_id and job_id != blocker
        page.locator("#cancel").press("Enter")
        expect(page.locator("#status")).to_have_text("Cancelled: the text was taken off the queue.")
        assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
        client.delete(f"/api/v1/jobs/{blocker}")
    expect(page.locator("#text")).to_have_value(text)
    expect(page.locator("#speak")).to_be_enabled()
    expect(page.locator("#error")).to_be_hidden()
    watched.assert_clean()


def test_a_full_queue_says_when_to_retry_and_keeps_the_text(
    open_page: OpenPage, busy_backend: Server
) -> None:
    watched = open_page(busy_backend.url + "/")
    page = watched.page
    accepted = []
    with client_for(busy_backend) as client:
        for _ in range(5):
            response = client.post("/api/v1/jobs", json={"text": long_text(10)})
            if response.status_code != 202:
                break
            accepted.append(response.json()["id"])
        assert response.status_code == 503, "the queue never filled"
        text = unique_text("No room in the queue for this")
        _speak(page, text)
        error = page.locator("#error")
        expect(error).to_contain_text("The server is busy: its queue is full.")
        expect(error).to_contain_text(
            re.compile(r"Your text was not queued\. Try again in \d+ s\.")
        )
        for job_id in accepted:
            client.delete(f"/api/v1/jobs/{job_id}")
    expect(page.locator("#text")).to_have_value(text)
    watched.assert_clean(r"status of 503 \(Service Unavailable\)")
    assert len(watched.console_errors) == 1


def test_a_missing_or_wrong_key_says_so_and_a_good_key_works(
    open_page: OpenPage, backend_factory: BackendFactory
) -> None:
    keyed = backend_factory(EF_API_KEYS=f"webui:{API_KEY}")
    watched = open_page(keyed.url + "/")
    page = watched.page
    expect(page.locator("#key-box")).to_have_attribute("open", "")  # the server needs a key
    text = unique_text("Only with a key")
    _speak(page, text)
    error = page.locator("#error")
    expect(error).to_contain_text("An API key is needed.")
    expect(page.locator("#api-key")).to_be_focused()
    page.fill("#api-key", "wrong-key-0123456789")
    page.click("#speak")
    expect(error).to_contain_text("The API key was not accepted.")
    expect(page.locator("#text")).to_have_value(text)
    page.fill("#api-key", API_KEY)
    page.click("#speak")
    _done(page)
    assert _duration(page) > 0.5
    page.reload()
    page.wait_for_selector("html[data-ready]", state="attached")
    expect(page.locator("#api-key")).to_have_value(API_KEY)  # kept in this browser
    watched.assert_clean(r"status of 401 \(Unauthorized\)")
    assert len(watched.console_errors) == 2


def test_history_replays_downloads_speaks_again_and_clears(
    open_page: OpenPage, backend: Server
) -> None:
    watched = open_page(backend.url + "/")
    page = watched.page
    first = unique_text("First phrase for the history")
    second = unique_text("Second phrase for the history")
    page.select_option("#format", "wav")
    for text in (first, second):
        _speak(page, text)
        _done(page)
    items = page.locator("#history li")
    expect(items).to_have_count(2)
    expect(items.nth(0).locator(".phrase")).to_have_text(second)  # newest first
    meta = items.nth(1).locator(".meta")
    expect(meta).to_contain_text("en_US-joe-medium (en_US) · speed 1 · WAV")

    page.fill("#text", "Something else I am typing.")
    items.nth(1).get_by_role("button", name="Replay").click()
    _done(page)
    expect(page.locator("#status")).to_contain_text("From the cache")
    assert _duration(page) > 0.5
    expect(page.locator("#text")).to_have_value("Something else I am typing.")  # untouched
    expect(items.nth(0).locator(".phrase")).to_have_text(first)  # replayed: now the newest

    with page.expect_download() as info:
        items.nth(1).get_by_role("button", name="Download").click()
    assert info.value.suggested_filename.startswith("echoforge-second-phrase-for-the-history")
    assert decode(info.value.path().read_bytes(), "wav").duration_s > 0.5

    items.nth(1).get_by_role("button", name="Speak again").click()
    _done(page)
    expect(page.locator("#text")).to_have_value(second)
    expect(page.locator("#status")).to_contain_text("From the cache")

    page.reload()
    page.wait_for_selector("html[data-ready]", state="attached")
    expect(items).to_have_count(2)  # kept in this browser
    page.click("#clear-history")
    expect(items).to_have_count(0)
    expect(page.locator("#history-empty")).to_be_visible()
    expect(page.locator("#status")).to_have_text("History cleared.")
    watched.assert_clean()


def test_keyboard_alone_reaches_every_control_and_speaks(
    open_page: OpenPage, backend: Server
) -> None:
    watched = open_page(backend.url + "/")
    page = watched.page
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Enter")  # skip link to the text box
    page.keyboard.type(unique_text("Typed and spoken without a mouse"))
    page.keyboard.press("Tab")  # voice
    page.keyboard.press("Tab")  # speed
    page.keyboard.press("Tab")  # format
    page.keyboard.press("Tab")  # API key summary
    page.keyboard.press("Tab")  # Speak
    expect(page.locator("#speak")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#cancel")).to_be_focused()  # focus follows the busy state
    _done(page)
    expect(page.locator("#speak")).to_be_focused()
    assert _duration(page) > 0.5

    page.click("#key-box summary")  # opened: its field must be reachable too
    expected = reachable_controls(page)
    reached = tab_through(page)
    assert expected <= set(reached), expected - set(reached)
    # The audio element's own controls draw their focus ring inside it.
    unseen = [k for k, visible in reached.items() if not visible and not k.startswith("audio:")]
    assert unseen == [], "focus must be visible on every control"
    assert {"textarea:text", "button:speak", "button:clear-history", "input:api-key"} <= set(
        reached
    )
    watched.assert_clean()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(open_page: OpenPage, backend: Server, scheme: str) -> None:
    for device, viewport in (("desktop", None), ("phone", PHONE)):
        kwargs = {"color_scheme": scheme} | ({"viewport": viewport} if viewport else {})
        watched = open_page(backend.url + "/", **kwargs)
        page = watched.page
        _speak(page, "Dinner is ready. Please come to the kitchen.")
        _done(page)
        _duration(page)
        page.evaluate("() => document.getElementById('player').pause()")
        page.evaluate("() => window.scrollTo(0, 0)")
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(16, 19, 23)" if scheme == "dark" else "rgb(245, 246, 248)")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= (viewport or {"width": 1280})["width"]  # no sideways scrolling
        assert watched.screenshot(f"speech-{device}-{scheme}").stat().st_size > 10_000
        watched.assert_clean()
