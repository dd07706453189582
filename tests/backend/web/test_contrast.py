"""The colours of frontend/assets/style.css meet WCAG 2.1 AA in both themes: 4.5:1 for text,
3:1 for focus outlines and the borders that show where a control is (1.4.11)."""

from __future__ import annotations

import re

import pytest

from tests.utils.procs import REPO

CSS = (REPO / "frontend" / "assets" / "style.css").read_text()

TEXT = [
    ("text", "card"),
    ("text", "bg"),
    ("muted", "card"),
    ("muted", "bg"),
    ("accent", "card"),
    ("accent", "bg"),
    ("accent-text", "accent"),
    ("ok", "card"),
    ("warn", "card"),
    ("bad", "card"),
    ("bad", "bad-bg"),
    ("text", "bad-bg"),
    ("text", "code-bg"),
]
UI = [("focus", "card"), ("focus", "bg"), ("border", "card"), ("border", "bg")]


def _theme(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6});", block))


def _themes() -> dict[str, dict[str, str]]:
    light = _theme(CSS.split("@media (prefers-color-scheme: dark)")[0])
    dark_block = CSS.split("@media (prefers-color-scheme: dark)")[1].split("\n}\n")[0]
    return {"light": light, "dark": {**light, **_theme(dark_block)}}


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _ratio(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_contrast(theme: str) -> None:
    colours = _themes()[theme]
    assert len(colours) == 13, colours
    low = [
        (fg, bg, round(_ratio(colours[fg], colours[bg]), 2))
        for pairs, minimum in ((TEXT, 4.5), (UI, 3.0))
        for fg, bg in pairs
        if _ratio(colours[fg], colours[bg]) < minimum
    ]
    assert low == []
