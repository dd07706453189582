"""schemathesis against a running backend's OpenAPI document: one command for the test and the
bench (tests/backend/api/test_fuzz.py runs a bounded number of cases, bench/fuzz.py a long run).

Every operation is called, the admin API included (the caller is 127.0.0.1, inside the default
EF_ADMIN_CIDRS), with valid and invalid input. A run fails on any 5xx, on a status code the
operation does not document, and on a body, content type or header its documentation rejects.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


#: The bounded test's phases; the long run adds "stateful": sequences that follow the links
#: schemathesis infers (a job made by POST, then read, fetched, cancelled by its id), so the job
#: routes are called with ids that exist, not only with random ones (404).
PHASES = ("examples", "coverage", "fuzzing")


def run_schemathesis(
    base_url: str,
    *,
    max_examples: int,
    report_dir: Path,
    seed: int = 1,
    timeout: float = 1200,
    phases: tuple[str, ...] = PHASES,
) -> subprocess.CompletedProcess[str]:
    """Run schemathesis against ``base_url``; the completed process (exit code 0 = clean)."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--phases",
        ",".join(phases),
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
