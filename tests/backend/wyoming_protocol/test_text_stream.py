"""Streamed text: which sentences are complete while more text may still come."""

from __future__ import annotations

from ef_backend.wyoming.handler import complete_sentences


def test_a_sentence_is_complete_once_the_next_one_starts() -> None:
    assert complete_sentences("Hello there.") == ([], "Hello there.")
    assert complete_sentences("Hello there. How") == (["Hello there."], "How")


def test_words_cut_between_chunks_are_joined() -> None:
    complete, rest = complete_sentences("It works. How ")
    assert (complete, rest) == (["It works."], "How ")
    assert complete_sentences(rest + "are you? Fine") == (["How are you?"], "Fine")


def test_abbreviations_and_decimals_wait_for_more_text() -> None:
    # "Dr." and "3." may go on: nothing is complete until the text after them is seen.
    assert complete_sentences("Ask Dr.") == ([], "Ask Dr.")
    assert complete_sentences("Ask Dr. Smith about it. Then") == (
        ["Ask Dr. Smith about it."],
        "Then",
    )
    assert complete_sentences("Pi is 3.") == ([], "Pi is 3.")
    assert complete_sentences("Pi is 3.14 or so. Next") == (["Pi is 3.14 or so."], "Next")


def test_several_sentences_in_one_chunk() -> None:
    assert complete_sentences("One. Two! Three? Fo") == (["One.", "Two!", "Three?"], "Fo")
