"""How ``ef`` answers: exit codes, one JSON object with ``--json``, readable lines otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

#: Done; healthy; the backup verified.
EXIT_OK = 0
#: It failed or is unhealthy: the backup did not verify, a check failed, the copy differed.
EXIT_FAILED = 1
#: Wrong arguments (argparse's own code).
EXIT_USAGE = 2
#: The service did not answer (not running, wrong --url, network).
EXIT_UNREACHABLE = 3
#: Refused: by the service (403 not an admin address, 404, 409) or by ef itself (the service is
#: still running, a backup from a newer schema, a target that is not empty).
EXIT_REFUSED = 4

EXIT_CODES = {
    EXIT_OK: "success (healthy, verified, done)",
    EXIT_FAILED: "failed: unhealthy, verification failed, or the operation failed",
    EXIT_USAGE: "usage error",
    EXIT_UNREACHABLE: "the service could not be reached",
    EXIT_REFUSED: "refused (by the service, or because it is running, or a newer schema)",
}


class CliError(Exception):
    """Ends the command with ``code``; ``details`` go into the JSON error object."""

    def __init__(self, message: str, code: int = EXIT_FAILED, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


def emit(as_json: bool, data: Any, lines: Iterable[str]) -> None:
    """Print ``data`` as one JSON object, or ``lines`` for a person."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        for line in lines:
            sys.stdout.write(line + "\n")


def fail(as_json: bool, error: CliError) -> int:
    """Report ``error`` (JSON on stdout for scripts, text on stderr for people)."""
    if as_json:
        body = {"error": error.message, "exit_code": error.code, **error.details}
        sys.stdout.write(json.dumps(body, indent=2, default=str) + "\n")
    else:
        sys.stderr.write(f"ef: {error.message}\n")
    return error.code


def table(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
