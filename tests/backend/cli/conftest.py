"""Fixtures of the ``ef`` tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from ef_backend.core import db
from ef_backend.services.queue import JobQueue

from tests.backend.cli.helpers import ef, env_for
from tests.utils.jobs import new_job


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A migrated data directory with a few jobs."""
    directory = tmp_path / "data"
    assert ef("migrate", env=env_for(directory)).code == 0
    engine = db.make_engine(f"sqlite:///{directory / 'db.sqlite'}")
    queue = JobQueue(db.session_factory(engine), max_queued=10_000, lease_s=30)
    for i in range(3):
        queue.enqueue(new_job(f"seed-{i}"))
    engine.dispose()
    return directory
