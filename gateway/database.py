"""One SQL database for the directory and the accounts: engine, sessions, migrations.

Why one module: the directory tables (`gateway.directory.sql`) and the account tables
(`gateway.auth.accounts`) live in the same database and share one `Base.metadata`, so
that one Alembic history (`gateway/migrations/`) creates both and one engine serves both.

- SQLite (``sqlite+aiosqlite:///path.db``) is the embedded default: the file's directory is
  created, every connection turns on WAL (readers do not block the writer) and foreign keys
  (off by default in SQLite), and waits up to 5 s on a locked database instead of failing.
- PostgreSQL (``postgresql+asyncpg://...``) is the production database. ``schema=`` puts
  every table (and Alembic's version table) into one schema through the connection's
  ``search_path``; tests use it to run in a throw-away schema.

Migrations run programmatically (`Database.migrate`, no alembic.ini): Alembic gets the
connection through ``config.attributes["connection"]`` (see ``gateway/migrations/env.py``)
and upgrades to ``heads``, so the auth revisions may form their own branch.

Two engines on one URL: `Database.engine` for writes and migrations (transactions, ping on
checkout) and `Database.reader` for the directory's single-statement lookups (autocommit,
no ping, no reset: one round trip a read).

Adding tables (auth developer): define them on `Base` in ``gateway/auth/accounts.py`` and add a
revision file in ``gateway/migrations/versions/`` with
``down_revision = DIRECTORY_HEAD`` (the string ``"0001_directory"``, the branch point; the
directory's own later revisions, such as ``0002_directory_revision``, form their own branch and
`migrate()` upgrades to every head); the revision id is free text, e.g. ``"0101_accounts"``.
`migrate()` imports ``gateway.auth.accounts`` when it exists so that autogenerate sees the tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import StaticPool

from gateway.settings import DatabaseSettings

__all__ = ["DIRECTORY_HEAD", "MIGRATIONS_DIR", "Base", "Database", "DatabaseError"]

#: The directory's newest Alembic revision: the auth revision's ``down_revision``.
DIRECTORY_HEAD = "0001_directory"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Deterministic constraint names, so that migrations can refer to them (and SQLite
#: batch mode can rebuild tables) on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The declarative base of every table of the gateway (directory and accounts)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DatabaseError(Exception):
    """The database cannot be reached or migrated (message says which URL, without password)."""


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


class Database:
    """One `AsyncEngine` plus a session factory; build it once at startup, `close()` at shutdown."""

    def __init__(
        self, url: str | URL, *, schema: str | None = None, echo: bool = False, reader_pool_size: int = 8
    ) -> None:
        self.url = make_url(url)
        self.reader_pool_size = reader_pool_size
        self.schema = schema
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = self.url.database or ""
            if database in ("", ":memory:"):
                # One shared connection, or every session would see its own empty database.
                kwargs["poolclass"] = StaticPool
            else:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 5}
        elif self.dialect == "postgresql":
            kwargs["pool_pre_ping"] = True
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        else:
            raise DatabaseError(f"database.url: unsupported database {self.dialect!r} (sqlite or postgresql)")
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _on_sqlite_connect)
        self.reader: AsyncEngine = self._reader(kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._migrate_lock = asyncio.Lock()

    def _reader(self, kwargs: dict[str, Any]) -> AsyncEngine:
        """The engine for single-statement reads (the directory's lookups): one round trip each.

        Autocommit, so no BEGIN before and no ROLLBACK after the query; no ping on checkout
        (a dead connection fails that one read, is invalidated by the pool, and
        `SqlDirectory` retries once on a fresh one); no reset on return, since an
        autocommit connection has no transaction to roll back. asyncpg keeps its prepared
        statements per connection (SQLAlchemy's default cache of 100), so a repeated lookup
        is Bind/Execute/Sync only. Writes keep `engine` and its transactions.
        An in-memory SQLite database exists once per connection, so there the reader is
        the same pool in autocommit mode.
        """
        if kwargs.get("poolclass") is StaticPool:
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A fixed set of connections, no overflow: under load the pool otherwise opened a
        # connection per read beyond its size and closed it on return (for SQLite a thread
        # started and ended per read: 600 reads/s at 32 in parallel instead of thousands).
        reader_kwargs = {**kwargs, "pool_pre_ping": False, "pool_reset_on_return": None,
                         "isolation_level": "AUTOCOMMIT", "pool_size": self.reader_pool_size, "max_overflow": 0,
                         "pool_timeout": 10}
        reader = create_async_engine(self.url, **reader_kwargs)
        if self.dialect == "sqlite":
            event.listen(reader.sync_engine, "connect", _on_sqlite_connect)
        return reader

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, *, base_dir: str | Path | None = None) -> Database:
        """Build from ``[database]``; a relative SQLite path is taken relative to `base_dir`."""
        url = make_url(settings.url)
        if base_dir is not None and url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database not in ("", ":memory:") and not Path(database).is_absolute():
                url = url.set(database=str(Path(base_dir) / database))
        return cls(url, reader_pool_size=settings.reader_pool_size)

    @property
    def safe_url(self) -> str:
        """The URL with the password masked, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Run ``SELECT 1``; raise `DatabaseError` when the database does not answer."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"database {self.safe_url} does not answer: {type(exc).__name__}") from exc

    async def migrate(self, target: str = "heads") -> None:
        """Bring the schema up to `target` (Alembic, programmatic; both SQLite and PostgreSQL)."""
        async with self._migrate_lock, self._sqlite_file_lock():
            try:
                async with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        # Several replicas (or workers) start at once: one migrates, the
                        # others wait here and then find the schema current.
                        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                    await conn.run_sync(_run_upgrade, target)
            except (SQLAlchemyError, OSError) as exc:
                raise DatabaseError(f"migrating {self.safe_url} failed: {exc}") from exc

    @asynccontextmanager
    async def _sqlite_file_lock(self) -> AsyncIterator[None]:
        """Serialise migrations of one SQLite file across processes (`serve --workers N`).

        SQLite has no advisory lock, and its deferred transactions let two workers both find
        an empty schema and both create the tables; an flock on a file beside the database
        makes the second wait and then find the schema current.
        """
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        import fcntl
        import os

        fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    async def current_revisions(self) -> set[str]:
        """The Alembic revisions the database is at (empty before the first migration)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revisions)

    async def close(self) -> None:
        if self.reader.sync_engine.pool is not self.engine.sync_engine.pool:
            await self.reader.dispose()
        await self.engine.dispose()


#: Advisory lock id that serialises migrations across processes ("portal-gw" in ASCII).
_MIGRATION_LOCK = 0x706F7274616C67


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic `Config` pointing at ``gateway/migrations`` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _run_upgrade(connection: Connection, target: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), target)


def _current_revisions(connection: Connection) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())
