"""The web pages in a real browser: Debian's Chromium driven by Playwright, against the real
backend and the real Piper engine.

Every page is served under a strict Content-Security-Policy (added here to the HTML documents,
on top of any the backend sends) and watched: console errors, uncaught exceptions and CSP
violations are collected, and each test checks there are none but the ones it provoked.
Screenshots go to ``build/test-artifacts/screenshots`` (EF_SCREENSHOT_DIR overrides; `make
screenshots` writes the ones shown in the README to docs/screenshots).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.utils.procs import REPO

CHROMIUM = "/usr/bin/chromium"

# Piper on a busy 2-core machine: a long text can take a minute.
expect.set_options(timeout=60_000)

#: No inline script or style, nothing from elsewhere; blob: only for the audio the page makes.
STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

PAGES = {"/", "/index.html", "/admin", "/admin/", "/admin/index.html", "/403.html"}

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

_RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def screenshot_dir() -> Path:
    default = REPO / "build" / "test-artifacts" / "screenshots"
    path = Path(os.environ.get("EF_SCREENSHOT_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Watched:
    """A page and everything it complained about."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("() => window.__cspViolations || []"))

    def assert_clean(self, *allowed: str) -> None:
        """No CSP violation, no uncaught error, and no console error but those in ``allowed``
        (regular expressions, each naming an error the test provoked on purpose)."""
        assert self.csp_violations() == []
        assert self.page_errors == []
        unexpected = [e for e in self.console_errors if not any(re.search(a, e) for a in allowed)]
        assert unexpected == [], self.console_errors
        assert not [e for e in self.console_errors if "Content Security Policy" in e]

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        path = screenshot_dir() / f"{name}.png"
        self.page.screenshot(
            path=str(path), animations="disabled", caret="hide", full_page=full_page
        )
        return path


OpenPage = Callable[..., Watched]


# Package scope, not session: Playwright's sync API keeps an event loop running in this thread
# until it stops, and pytest-asyncio cannot run the async tests of later packages meanwhile.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


def _with_csp(route: Route) -> None:
    response = route.fetch()
    headers = dict(response.headers)
    existing = headers.get("content-security-policy")
    # Two policies are both enforced: the backend's (if any) and ours.
    headers["content-security-policy"] = f"{existing}, {STRICT_CSP}" if existing else STRICT_CSP
    route.fulfill(response=response, headers=headers)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """``open_page(url, color_scheme="light", viewport=DESKTOP)``: a fresh browser context
    (empty localStorage) with the page loaded and its scripts done (``html[data-ready]``)."""
    contexts = []

    def open_(
        url: str,
        *,
        color_scheme: str = "light",
        viewport: dict[str, int] = DESKTOP,
        wait_ready: bool = True,
    ) -> Watched:
        context = browser.new_context(
            color_scheme=color_scheme,  # type: ignore[arg-type]
            viewport=viewport,  # type: ignore[arg-type]
            accept_downloads=True,
        )
        contexts.append(context)
        context.route(lambda u: urlsplit(u).path in PAGES, _with_csp)
        context.add_init_script(_RECORD_CSP)
        page = context.new_page()
        page.set_default_timeout(60_000)
        watched = Watched(page)
        page.on(
            "console",
            lambda m: watched.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: watched.page_errors.append(str(e)))
        response = page.goto(url)
        assert response is not None
        if wait_ready:
            try:
                page.wait_for_selector("html[data-ready]", state="attached")
            except PlaywrightTimeout:
                raise AssertionError(
                    f"{url} never became ready; console errors {watched.console_errors}, "
                    f"uncaught {watched.page_errors}, CSP {watched.csp_violations()}"
                ) from None
        return watched

    yield open_
    for context in contexts:
        context.close()


_FOCUSABLE = "a[href], button, input, select, textarea, summary, audio[controls]"

_DESCRIBE = """(el) => {
  if (!el || el === document.body) return null;
  const name = el.id || el.getAttribute("aria-label") || el.textContent.trim().slice(0, 40);
  const style = getComputedStyle(el);
  return {
    key: `${el.tagName.toLowerCase()}:${name}`,
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
  };
}"""


def reachable_controls(page: Page) -> set[str]:
    """Every visible, enabled control of the page (what keyboard users must reach)."""
    return set(
        page.evaluate(
            f"""() => [...document.querySelectorAll({_FOCUSABLE!r})]
              .filter((el) => !el.disabled && el.getClientRects().length > 0)
              .map((el) => ({_DESCRIBE})(el).key)"""
        )
    )


def tab_through(page: Page, max_steps: int = 150) -> dict[str, bool]:
    """Press Tab until focus comes back round to the first control reached; each control
    reached, and whether its focus was visible (an outline of at least 2 px)."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    page.evaluate("() => window.scrollTo(0, 0)")
    reached: dict[str, bool] = {}
    first = None
    for _ in range(max_steps):
        page.keyboard.press("Tab")
        info = page.evaluate(f"() => ({_DESCRIBE})(document.activeElement)")
        if info is None:  # past the last control: the next Tab starts again at the top
            continue
        if info["key"] == first:
            break
        first = first or info["key"]
        reached[info["key"]] = reached.get(info["key"], False) or info["outline"]
    return reached
