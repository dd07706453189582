"""Fixtures for the service tests: settings on a temporary data directory, a migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ef_backend.core import db
from ef_backend.core.config import Settings
from ef_backend.services.runtime import Runtime
from sqlalchemy import Engine

from tests.utils.postgres import PostgresServer

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Settings on ``tmp_path`` (no .env, no EF_* from the environment), with overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", **overrides}
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def database_url(request: pytest.FixtureRequest) -> str:
    """``""`` (SQLite in the data directory) or a new, empty database on the session's real
    PostgreSQL: tests that take this run on both."""
    if request.param == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def migrated(settings: Settings) -> Iterator[Engine]:
    """An engine on a freshly migrated database."""
    db.migrate(settings)
    engine = db.make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(migrated: Engine) -> db.SessionFactory:
    return db.session_factory(migrated)


ServiceFactory = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def service_factory(make_settings: SettingsFactory) -> AsyncIterator[ServiceFactory]:
    """Build a `Runtime` on a migrated database; ``start=False`` leaves the workers off.

    Every service built here is stopped at the end of the test.
    """
    built: list[Runtime] = []

    async def build(*, start: bool = True, **overrides: Any) -> Runtime:
        settings = make_settings(**overrides)
        db.migrate(settings)
        service = Runtime(settings=settings)
        built.append(service)
        if start:
            await service.start()
        return service

    yield build
    for service in reversed(built):
        await service.stop()
