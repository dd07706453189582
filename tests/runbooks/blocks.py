"""Shell blocks of a runbook and how each is marked.

A fenced ``sh`` (or ``bash``) block right after a ``<!-- tested -->`` line is run by the suite;
after ``<!-- homelab -->`` it needs Docker or the real homelab and is not run. A fenced
``output`` block right after a tested block is its expected output: each of its lines must
appear, in order, among the lines the block printed, where ``...`` stands for any text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MARKERS = {"<!-- tested -->": "tested", "<!-- homelab -->": "homelab"}
SHELLS = {"sh", "bash", "shell"}


@dataclass
class Block:
    """One shell block: where it is, how it is marked, what it must print."""

    path: Path
    line: int
    kind: str | None
    code: str
    expected: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def parse(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    marker: str | None = None
    shell_closed_at = -10
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped in MARKERS:
            marker = MARKERS[stripped]
            i += 1
            continue
        if stripped.startswith("```"):
            info = stripped[3:].strip().split()
            language = info[0] if info else ""
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            body = "\n".join(lines[start:end]) + "\n"
            if language in SHELLS:
                blocks.append(Block(path, i + 1, marker, body))
                shell_closed_at = end
            elif language == "output":
                between = lines[shell_closed_at + 1 : i]
                if not blocks or any(line.strip() for line in between):
                    raise ValueError(
                        f"{path.name}:{i + 1}: an output block must follow a shell block"
                    )
                blocks[-1].expected = [line for line in body.splitlines() if line.strip()]
            marker = None
            i = end + 1
            continue
        if stripped:
            marker = None if not stripped.startswith("<!--") else marker
        i += 1
    return blocks


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.strip().split("...")]
    return re.compile(".*".join(parts))


def missing_output(expected: list[str], printed: str) -> str | None:
    """The first expected line not found (in order) in ``printed``; None when all are."""
    actual = printed.splitlines()
    position = 0
    for line in expected:
        pattern = _pattern(line)
        while position < len(actual) and not pattern.search(actual[position]):
            position += 1
        if position == len(actual):
            return line
        position += 1
    return None
