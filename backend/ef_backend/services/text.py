"""Text normalisation and sentence splitting.

The normalised text is part of the cache key, so two requests that differ only in spacing or in
Unicode composition share one synthesis. Sentences are the unit of synthesis, caching and
streaming: the splitter must not break at "Dr." or "3.14", and must cut a run-on sentence
without punctuation at a bounded length so no single engine call grows without limit.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_SENTENCE_CHARS", "normalize", "split_sentences"]

#: Longest piece sent to the engine in one call; longer sentences are cut at a pause or a space.
MAX_SENTENCE_CHARS = 300

# Words that end with a period without ending the sentence (compared lower-case, without the dot).
_ABBREVIATIONS = frozenset(
    " ".join(
        (
            "mr mrs ms mx dr prof sr jr st mt ft vs etc eg ie cf al approx apt ave blvd capt col",
            "gen gov lt sgt rev hon inc ltd co corp dept est fig figs no nos vol vols pp ch sec",
            "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun min max",
            "misc univ assn bros e.g i.e a.m p.m u.s u.k u.n ph.d",
        )
    ).split(" ")
)
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
# A terminator run, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"([.!?\u2026]+|[\u3002\uff01\uff1f]+)([\"'\u201d\u2019)\]\u00bb]*)(\s*)")
_CJK_BOUNDARY = re.compile(r"[\u3002\uff01\uff1f]")
_SOFT_BREAK = re.compile(r"[,;:\u2013\u2014)\]](?=\s)|\s[\u2013\u2014-]\s")


def normalize(text: str) -> str:
    """NFC, no control characters, single spaces; a blank line (paragraph break) becomes "\\n"."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(
        ch
        if ch == "\n" or unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"}
        else (" " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else "")
        for ch in text
    )
    paragraphs = _BLANK_LINES.split(text)
    cleaned = (_SPACES.sub(" ", " ".join(p.split("\n"))).strip() for p in paragraphs)
    return "\n".join(p for p in cleaned if p)


def _is_abbreviation(before: str) -> bool:
    """Does the word that ends at a period look like an abbreviation or an initial?"""
    word = before.rsplit(None, 1)[-1] if before.strip() else ""
    word = word.lstrip("\"'(\u201c\u2018[").lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. R. R. Tolkien"
    return word in _ABBREVIATIONS


def _split_paragraph(paragraph: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        end = match.end()
        rest = paragraph[end:]
        terminator = match.group(1)
        is_cjk = bool(_CJK_BOUNDARY.match(terminator))
        if not is_cjk and not match.group(3) and rest:
            continue  # "3.14", "example.com": no space after the dot
        if terminator == "." and _is_abbreviation(paragraph[start : match.start()]):
            continue
        if rest and not is_cjk and rest[0].islower():
            continue  # "e.g. this" or an ellipsis inside a sentence
        piece = paragraph[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _cut(sentence: str, max_chars: int) -> list[str]:
    """Cut a sentence longer than ``max_chars`` at the last pause mark or space before the limit."""
    pieces: list[str] = []
    rest = sentence
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut = -1
        for match in _SOFT_BREAK.finditer(window):
            if match.end() > max_chars // 3:
                cut = match.end()
        if cut <= 0:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = max_chars  # one enormous word: a hard cut is the only option
        piece = rest[:cut].strip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def split_sentences(text: str, *, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Split normalised text into sentences of at most ``max_chars`` characters, in order."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        for sentence in _split_paragraph(paragraph):
            for piece in _cut(sentence, max_chars):
                if speakable(piece):
                    sentences.append(piece)
                elif sentences and len(sentences[-1]) + 1 + len(piece) <= max_chars:
                    # "...", "?!", emoji: nothing an engine can say (Piper returns no audio).
                    # Kept at the end of the piece before it, where it may still shape a pause.
                    sentences[-1] = f"{sentences[-1]} {piece}"
    return sentences


def speakable(text: str) -> bool:
    """Has ``text`` anything to say: at least one letter or digit (in any script)?"""
    return any(ch.isalnum() for ch in text)
