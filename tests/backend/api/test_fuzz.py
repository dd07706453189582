"""Bad input, generated: schemathesis against the backend's OpenAPI document (tests/utils/fuzz.py).

A bounded run (a few cases per operation, fixed seed) on a backend of its own, so that what it
queues, purges or cancels touches no other test; bench/fuzz.py runs many more cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backend.conftest import BackendFactory
from tests.utils.fuzz import run_schemathesis

pytestmark = pytest.mark.server


def test_every_operation_answers_generated_input_as_documented(
    backend_factory: BackendFactory, tmp_path: Path
) -> None:
    backend = backend_factory()
    result = run_schemathesis(backend.url, max_examples=5, report_dir=tmp_path / "report")
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert "Tested: " in summary and "Selected: " in summary
    selected = summary.split("Selected: ", 1)[1].split("\n", 1)[0]  # "25/25"
    tested = summary.split("Tested: ", 1)[1].split("\n", 1)[0]
    assert tested == selected.split("/", 1)[0], summary  # every operation was called
