"""Alembic environment for ef_backend.

Used two ways: programmatically by `ef_backend.core.db.migrate` (which passes an open connection
in ``config.attributes["connection"]``), and by the ``alembic`` CLI with
``alembic -c backend/ef_backend/migrations/alembic.ini upgrade head``, which reads the database
URL from the ``EF_*`` settings (``EF_DATABASE_URL`` or ``EF_DATA_DIR``) unless ``-x url=...``
names one.
"""

from __future__ import annotations

import ef_backend.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from alembic import context
from ef_backend.core import db
from ef_backend.core.config import Settings
from sqlalchemy import Connection
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    return url or Settings().db_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds tables for later migrations.
        render_as_batch=db.is_sqlite(connection.engine),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=db.is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = db.make_engine(_url())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
