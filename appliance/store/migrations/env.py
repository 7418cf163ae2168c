"""Alembic environment of the seedqa store.

Run through `appliance.store.db.upgrade`, which builds the configuration in code and
passes an open connection in ``config.attributes["connection"]``. Logging is left to
the application: this file configures none.
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import Connection, event

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


def _emit_begin(connection: Connection) -> None:
    # In autocommit mode pysqlite starts no transaction itself; this makes each
    # SQLAlchemy begin a real SQLite one, which then also covers DDL.
    connection.exec_driver_sql("BEGIN")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise ForeignKeyCheckFailed(
            f"after migrating, {len(broken)} rows break foreign keys, first "
            f"{tuple(broken[0])} (table, rowid, parent, fk index); the migration "
            "was rolled back, so the database keeps its previous schema; report "
            "the migration"
        )


def _migrate(connection: Connection, *, is_sqlite: bool) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
        # Alembic assumes SQLite cannot roll back DDL. It can, inside an explicit
        # BEGIN (see `_run_on_sqlite`); then the whole upgrade, version row
        # included, is one transaction that a crash cannot leave half done.
        transactional_ddl=True if is_sqlite else None,
    )
    with context.begin_transaction():
        context.run_migrations()

        if is_sqlite:
            _check_foreign_keys(connection)


def _run_on_sqlite(connection: Connection) -> None:
    foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one()
    # SQLite alters a table by copying and dropping it ("batch" mode); with foreign
    # keys on, dropping a parent would cascade-delete its children. The pragma only
    # takes effect outside a transaction, hence the commit.
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()

    # pysqlite in its default mode issues no BEGIN before DDL, so each CREATE or
    # ALTER would commit alone. With the driver's own transaction handling off and
    # an explicit BEGIN, DDL and data share one transaction.
    isolation_level = connection.get_execution_options().get(
        "isolation_level", connection.default_isolation_level
    )
    connection.execution_options(isolation_level="AUTOCOMMIT")
    event.listen(connection, "begin", _emit_begin)
    try:
        _migrate(connection, is_sqlite=True)
    finally:
        event.remove(connection, "begin", _emit_begin)
        if connection.in_transaction():
            connection.rollback()
        # Hand the connection back to its pool as it came.
        connection.execution_options(isolation_level=isolation_level)
        connection.exec_driver_sql(f"PRAGMA foreign_keys={int(foreign_keys)}")
        connection.commit()


def _run_on(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        _run_on_sqlite(connection)
    else:
        _migrate(connection, is_sqlite=False)


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
