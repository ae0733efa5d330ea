"""The directory revision: how each worker learns that directory facts changed.

Every write to a ``dir_*`` table bumps ``dir_revision.revision`` in the writer's own
transaction (triggers of the Alembic revision ``0002_directory_revision``; the importer
bumps it as well). `RevisionWatcher` keeps a `CachedDirectory` in step with it:

- **Poll** (SQLite and PostgreSQL): one indexed single-row read every
  ``revision_poll_seconds``, on the autocommit reader (one round trip).
- **LISTEN/NOTIFY** (PostgreSQL): the triggers ``NOTIFY portal_gateway_directory`` at
  commit; a dedicated asyncpg connection listens, and a notification wakes the watcher to
  read the revision at once (the payload is not trusted: other schemas in the same
  database notify the same channel). A lost LISTEN connection is re-opened at the next
  poll; meanwhile the poll alone keeps the bound.
- **Loss**: a failed or timed-out read drops the cache and leaves it unconfirmed, so
  lookups go to the database (503 if it does not answer) until a read succeeds again.

The bound operators get: an answer served from memory is never older than
``2 * revision_poll_seconds`` (`CachedDirectory.max_staleness`); with LISTEN working,
typically the notification's delivery plus one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.database import Database
from gateway.directory.base import DirectoryUnavailable
from gateway.directory.cache import CachedDirectory
from gateway.directory.tables import DirectoryRevisionRow

__all__ = ["CHANNEL", "RevisionSource", "RevisionWatcher", "SqlRevisionSource", "bump_revision"]

log = logging.getLogger("gateway.directory")

#: The NOTIFY channel of the triggers (payload: the schema that changed).
CHANNEL = "portal_gateway_directory"
_revision = DirectoryRevisionRow.__table__


async def bump_revision(conn: AsyncConnection) -> None:
    """Bump the revision inside the caller's transaction (visible at its commit)."""
    await conn.execute(
        update(DirectoryRevisionRow).where(_revision.c.id == 1).values(revision=_revision.c.revision + 1)
    )


class RevisionSource(Protocol):
    #: True when `listen` can deliver changes (PostgreSQL); False: poll only.
    pushes: bool

    async def read(self) -> int:
        """The current revision; raise `DirectoryUnavailable` when it cannot be read."""
        ...

    async def listen(self, on_change: Callable[[], None], on_lost: Callable[[], None]) -> bool:
        """Start push notifications; False when the source has none (poll only)."""
        ...

    async def close(self) -> None: ...


class SqlRevisionSource:
    """``dir_revision`` in the gateway's database; LISTEN on PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._statement = select(_revision.c.revision).where(_revision.c.id == 1)
        self._listener: object | None = None
        self.pushes = database.dialect == "postgresql"

    async def read(self) -> int:
        try:
            async with self.database.reader.connect() as conn:
                value = (await conn.execute(self._statement)).scalar_one_or_none()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise DirectoryUnavailable(f"directory revision cannot be read: {type(exc).__name__}") from exc
        if value is None:
            raise DirectoryUnavailable("directory revision row is missing (run the migrations)")
        return int(value)

    async def listen(self, on_change: Callable[[], None], on_lost: Callable[[], None]) -> bool:
        if not self.pushes:
            return False
        import asyncpg  # type: ignore[import-untyped]

        await self.close()
        # The URL's SQLAlchemy-only options would reach asyncpg as server settings.
        url = self.database.url.set(drivername="postgresql").difference_update_query(
            ["prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback"]
        )
        kwargs: dict[str, object] = {}
        if self.database.schema:
            kwargs["server_settings"] = {"search_path": self.database.schema}
        try:
            conn = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=5, **kwargs)
            schema = await conn.fetchval("SELECT current_schema()")

            def notified(_conn: object, _pid: int, _channel: str, payload: str) -> None:
                if payload == schema:
                    on_change()

            def terminated(_conn: object) -> None:
                on_lost()

            await conn.add_listener(CHANNEL, notified)
            conn.add_termination_listener(terminated)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("directory revision: LISTEN %s failed (%s); polling only", CHANNEL, type(exc).__name__)
            return False
        self._listener = conn
        return True

    async def close(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            import asyncpg

            assert isinstance(conn, asyncpg.Connection)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)


class RevisionWatcher:
    """Keeps one `CachedDirectory` at the source's revision (poll + optional push)."""

    def __init__(
        self,
        cache: CachedDirectory,
        source: RevisionSource,
        *,
        poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.source = source
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        #: The last check's outcome, for readiness.
        self.last_error: str | None = None

    def _changed(self) -> None:
        self._wake.set()

    def _lost(self) -> None:
        self.listening = False
        self._wake.set()

    async def check(self) -> bool:
        """Read the revision once and confirm or drop the cache; True when it was read."""
        started = self._clock()
        try:
            revision = await asyncio.wait_for(self.source.read(), self.poll_seconds)
        except (DirectoryUnavailable, TimeoutError) as exc:
            if self.last_error is None:
                log.warning("directory revision check failed (%s): cache dropped, lookups uncached", exc)
            self.last_error = str(exc) or type(exc).__name__
            self.cache.lose()
            return False
        if self.last_error is not None:
            log.info("directory revision check works again (revision %d)", revision)
        self.last_error = None
        self.cache.confirm(revision, started)
        return True

    async def start(self) -> None:
        """Listen (when the source can), check once, then keep checking in a task."""
        if self.source.pushes:
            with contextlib.suppress(TimeoutError):
                self.listening = await asyncio.wait_for(
                    self.source.listen(self._changed, self._lost), self.poll_seconds
                )
        await self.check()
        self._task = asyncio.create_task(self._run(), name="directory-revision-watch")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            await self.check()
            if self.source.pushes and not self.listening:
                # After the check, and bounded: a slow reconnect must not delay the poll.
                try:
                    self.listening = await asyncio.wait_for(
                        self.source.listen(self._changed, self._lost), self.poll_seconds
                    )
                except TimeoutError:
                    self.listening = False

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.source.close()
        self.listening = False
