"""Normalisation and sentence splitting: what becomes a cache key and a unit of synthesis."""

from __future__ import annotations

import pytest
from ef_backend.services.text import MAX_SENTENCE_CHARS, normalize, split_sentences


def test_normalize_makes_equivalent_texts_equal() -> None:
    composed = "Café au lait."
    decomposed = "Cafe\u0301 au lait."
    assert composed != decomposed
    assert normalize(decomposed) == normalize(composed) == "Café au lait."
    assert normalize("  Hello\t\tworld.\r\n  How   are you?  ") == "Hello world. How are you?"


def test_normalize_drops_control_and_invisible_characters() -> None:
    assert normalize("Hel\u200blo\x00 there\x07.") == "Hello there ."
    assert normalize(" \n\t\u200b ") == ""


def test_normalize_keeps_paragraph_breaks_as_one_newline() -> None:
    assert normalize("Chapter one\n\n\n  It was late.\nVery late.") == (
        "Chapter one\nIt was late. Very late."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world. How are you? Fine!", ["Hello world.", "How are you?", "Fine!"]),
        (
            "Dr. Smith met Mrs. Jones at 5 p.m. today.",
            ["Dr. Smith met Mrs. Jones at 5 p.m. today."],
        ),
        ("Pi is 3.14159. Euler's number is 2.718.", ["Pi is 3.14159.", "Euler's number is 2.718."]),
        (
            "J. R. R. Tolkien wrote it. Then he rested.",
            ["J. R. R. Tolkien wrote it.", "Then he rested."],
        ),
        ('She said "Stop." Then she left.', ['She said "Stop."', "Then she left."]),
        ("Visit example.com for more. Thanks.", ["Visit example.com for more.", "Thanks."]),
        ("Wait... what? No!", ["Wait... what?", "No!"]),
        ("It costs e.g. ten euros. Cheap.", ["It costs e.g. ten euros.", "Cheap."]),
        ("今日は晴れ。明日は雨\uff01", ["今日は晴れ。", "明日は雨\uff01"]),
        ("No final punctuation here", ["No final punctuation here"]),
        ("Title\n\nFirst line. Second line.", ["Title", "First line.", "Second line."]),
        # Nothing to say on its own (Piper gives no audio): joins the sentence before it.
        ("Hello. ... World.", ["Hello. ...", "World."]),
        (
            "Great news! \U0001f389\U0001f389. Really.",
            ["Great news! \U0001f389\U0001f389.", "Really."],
        ),
        ("?! Then words.", ["Then words."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(normalize(text)) == expected


def test_long_sentence_without_punctuation_is_cut_at_spaces() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    pieces = split_sentences(text, max_chars=80)
    assert len(pieces) > 1
    assert all(len(piece) <= 80 for piece in pieces)
    assert " ".join(pieces) == text  # nothing lost, nothing cut inside a word


def test_long_sentence_prefers_a_pause_mark() -> None:
    clause = "the quick brown fox jumps over the lazy dog"
    text = f"{clause}, {clause}, {clause}, {clause}."
    pieces = split_sentences(text, max_chars=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece.endswith((",", ".")) for piece in pieces)
    assert " ".join(pieces) == text


def test_one_enormous_word_is_cut_hard() -> None:
    pieces = split_sentences("x" * 250, max_chars=100)
    assert [len(p) for p in pieces] == [100, 100, 50]


def test_default_limit_bounds_every_engine_call() -> None:
    text = normalize(("lorem ipsum dolor sit amet " * 200) + ". Short one.")
    pieces = split_sentences(text)
    assert all(len(piece) <= MAX_SENTENCE_CHARS for piece in pieces)
    assert pieces[-1] == "Short one."


def test_no_piece_is_unspeakable_even_after_cutting() -> None:
    """A long run of emoji is cut like any long sentence; no piece without words reaches the
    engine (ef_tts refuses those with 400 nothing_to_say, which would fail the whole job)."""
    text = normalize("Great news " + "\U0001f389 " * 300 + "and words at the end.")
    pieces = split_sentences(text)
    assert pieces, pieces
    assert all(any(ch.isalnum() for ch in piece) for piece in pieces), pieces
    assert all(len(piece) <= MAX_SENTENCE_CHARS for piece in pieces)
    assert pieces[0].startswith("Great news") and pieces[-1].endswith("and words at the end.")


def test_empty_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences("...") == []
    assert split_sentences("\U0001f642 !? \u2026") == []
    with pytest.raises(ValueError, match="positive"):
        split_sentences("Hi.", max_chars=0)
