"""Alembic environment of the seedqa store.

Run through `appliance.store.db.upgrade`, which builds the configuration in code and
passes an open connection in ``config.attributes["connection"]``. Logging is left to
the application: this file configures none.
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import Connection

from appliance.store.db import create_engine_for
from appliance.store.models import Base

log = logging.getLogger(__name__)

config = context.config
target_metadata = Base.metadata


class ForeignKeyCheckFailed(RuntimeError):
    """A migration left rows whose foreign keys point at nothing."""


def run_migrations_offline() -> None:
    """Write the migration SQL for the configured URL instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    foreign_keys = 0
    if is_sqlite:
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
        # SQLite alters a table by copying and dropping it ("batch" mode); with
        # foreign keys on, dropping a parent would cascade-delete its children. The
        # pragma only takes effect outside a transaction, hence the commit.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()

    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

        if is_sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            connection.commit()
            if broken:
                raise ForeignKeyCheckFailed(
                    f"after migrating, {len(broken)} rows break foreign keys, first "
                    f"{tuple(broken[0])} (table, rowid, parent, fk index); restore "
                    "the database from its backup and report the migration"
                )
    finally:
        if is_sqlite:
            if connection.in_transaction():
                connection.rollback()
            # Hand the connection back to its pool as it came.
            connection.exec_driver_sql(f"PRAGMA foreign_keys={int(foreign_keys)}")
            connection.commit()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new engine for the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return

    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise ValueError("no connection and no sqlalchemy.url given to Alembic")
    engine = create_engine_for(url)
    try:
        with engine.connect() as new_connection:
            _run_on(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
