"""Engines, migrations and transactional sessions for the inspection database.

The database URL is a setting: the bench default is a SQLite file in the data
directory, and a lab with many rigs can point them all at one PostgreSQL server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Alembic runs a migration through module-level proxies (`alembic.context`), so two
#: threads migrating at once break each other; the app opens the database from
#: several worker threads.
_MIGRATION_LOCK = threading.Lock()

#: Set on every SQLite connection. WAL lets the UI read history while a sample is
#: being written; `synchronous=NORMAL` is safe with WAL (a power cut may lose the
#: last commits but never corrupts the file); foreign keys are off in SQLite unless
#: asked for, per connection.
SQLITE_PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of the SQLite database file at `path`.

    Parameters
    ----------
    path : Path
        The database file; relative paths are made absolute, so the URL does not
        depend on the working directory.

    Returns
    -------
    str
        A URL such as ``sqlite+pysqlite:////var/lib/seedqa/seedqa.db``.
    """
    return f"sqlite+pysqlite:///{Path(path).expanduser().resolve()}"


def _set_sqlite_pragmas(
    dbapi_connection: Any, connection_record: ConnectionPoolEntry
) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        cursor.close()

    if mode != "wal":
        # An in-memory database cannot use WAL; it reports "memory".
        log.debug("SQLite connection runs with journal_mode=%s, not wal", mode)


def create_engine_for(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url`, configured for this application.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL. For SQLite, every new connection gets `SQLITE_PRAGMAS`
        (WAL journal, foreign keys on, a 5 s busy timeout, synchronous=NORMAL).
        Other backends (PostgreSQL) are used as they come, with pre-ping so a
        restarted server does not break the pool.
    **kwargs
        Passed on to `sqlalchemy.create_engine`.

    Returns
    -------
    Engine
        The engine; call `dispose()` when done with it.
    """
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _set_sqlite_pragmas)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **kwargs)

    log.debug("created engine for %s", engine.url.render_as_string(hide_password=True))
    return engine


def alembic_config(url: str) -> Config:
    """Build the Alembic configuration of the store in code (no alembic.ini).

    Parameters
    ----------
    url : str
        The database URL, used when Alembic is given no open connection.

    Returns
    -------
    alembic.config.Config
        Configuration whose script location is the package's migrations directory.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Config values go through configparser interpolation, so a URL-encoded password
    # ("%40") must have its percent signs doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations on `engine`'s database up to `revision`.

    On SQLite the whole upgrade, the ``alembic_version`` row included, is one
    transaction: a process killed midway leaves the database at its old revision.

    Parameters
    ----------
    engine : Engine
        An engine made by `create_engine_for`.
    revision : str
        The target revision; ``"head"`` is the newest.
    """
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with _MIGRATION_LOCK, engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    log.info(
        "database %s migrated to %s",
        engine.url.render_as_string(hide_password=True),
        revision,
    )


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations on the database at `url` up to `revision`.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL; a missing SQLite file is created.
    revision : str
        The target revision; ``"head"`` is the newest.
    """
    engine = create_engine_for(url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


class Database:
    """An engine and a session factory, with one transaction per `session()`.

    Parameters
    ----------
    engine : Engine
        The engine to use, normally from `create_engine_for`. `close()` disposes it.

    Examples
    --------
    >>> from sqlalchemy import text
    >>> with Database.open("sqlite://") as db, db.session() as session:
    ...     session.execute(text("SELECT count(*) FROM rigs")).scalar_one()
    0
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Self:
        """Open the database at `url`, first migrating it to the newest schema.

        Parameters
        ----------
        url : str
            A SQLAlchemy URL, e.g. from `sqlite_url`.
        migrate : bool
            Run the Alembic migrations to head before returning.

        Returns
        -------
        Database
            The open database; close it with `close()` or a ``with`` block.
        """
        engine = create_engine_for(url)
        try:
            if migrate:
                upgrade_engine(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The underlying SQLAlchemy engine."""
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session whose work is committed on success, rolled back on error.

        Yields
        ------
        Session
            A session in its own transaction; it is closed on exit.
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        """Dispose of the engine and its pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
