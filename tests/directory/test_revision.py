"""The directory revision on real databases, and what one lookup costs on the wire.

- Every kind of write to a directory table bumps the revision, in the writer's
  transaction (a rolled-back write does not); the importer bumps it.
- PostgreSQL pushes the change (NOTIFY): a watcher whose poll is far away sees it at once;
  a killed LISTEN connection is noticed and re-opened, and the poll carries on meanwhile.
- A lookup that reaches the database is one round trip: counted on the PostgreSQL wire by
  a proxy that reads the client's protocol messages (Bind/Execute/Sync, nothing else), and
  on SQLite as the statements SQLite runs (trace callback: the SELECT, no BEGIN/ROLLBACK)
  and the hops to aiosqlite's worker thread (one).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import asyncpg
import pytest
from sqlalchemy import text

from gateway.database import Database
from gateway.directory.cache import CachedDirectory
from gateway.directory.importer import import_world
from gateway.directory.proofs import ProofHashers
from gateway.directory.revision import RevisionWatcher, SqlRevisionSource
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import World
from tests.directory.conftest import pg_database

ANNA_LINE = "436641000001"


@asynccontextmanager
async def world_db(kind: str, tmp_path: Any, world: World, hashers: ProofHashers) -> AsyncIterator[Database]:
    if kind == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}")
        try:
            await db.migrate()
            await import_world(db, world, hashers=hashers)
            yield db
        finally:
            await db.close()
    else:
        async with pg_database() as db:
            await db.migrate()
            await import_world(db, world, hashers=hashers)
            yield db


async def write(db: Database, sql: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_every_write_bumps_the_revision(
    kind: str, tmp_path: Any, demo_world: World, hashers: ProofHashers
) -> None:
    async with world_db(kind, tmp_path, demo_world, hashers) as db:
        source = SqlRevisionSource(db)
        seen = [await source.read()]

        async def bumped() -> None:
            now = await source.read()
            assert now > seen[-1]
            seen.append(now)

        await write(db, f"UPDATE dir_lines SET customer_number = '1000010' WHERE msisdn = '{ANNA_LINE}'")
        await bumped()
        await write(db, "INSERT INTO dir_persons (id, name) VALUES ('p-new', 'New Person')")
        await bumped()
        await write(db, "UPDATE dir_customers SET name = 'Anna H.' WHERE number = '1000001'")
        await bumped()
        await write(db, "DELETE FROM dir_invoices WHERE number = 'RE-2026-100001'")
        await bumped()
        await write(db, "INSERT INTO dir_customer_relations VALUES ('p-new', 'authorised', '1000001')")
        await bumped()
        await write(db, "UPDATE dir_contracts SET framework_customer = NULL WHERE id = 'ct-1000021'")
        await bumped()
        await write(db, "DELETE FROM dir_vpns")
        await bumped()
        await import_world(db, demo_world, replace=True, hashers=hashers)
        await bumped()
        # A write that is rolled back changes nothing, not even the revision.
        with contextlib.suppress(RuntimeError):
            async with db.engine.begin() as conn:
                await conn.execute(text("UPDATE dir_lines SET part = NULL"))
                raise RuntimeError("rolled back")
        assert await source.read() == seen[-1]


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_postgres_pushes_the_change_before_the_next_poll(demo_world: World, hashers: ProofHashers) -> None:
    async with world_db("postgres", None, demo_world, hashers) as db:
        directory = SqlDirectory(db, hashers=hashers)
        cache = CachedDirectory(directory, max_staleness_seconds=600)
        # The poll is 5 minutes away: only the notification can bring the change in time.
        watcher = RevisionWatcher(cache, SqlRevisionSource(db), poll_seconds=300)
        await watcher.start()
        try:
            assert watcher.listening
            line = await cache.line(ANNA_LINE)
            assert line is not None and line.customer_number == "1000001"
            before = cache.revision
            await write(db, f"UPDATE dir_lines SET customer_number = '1000010' WHERE msisdn = '{ANNA_LINE}'")
            await wait_for(lambda: cache.revision != before)
            line = await cache.line(ANNA_LINE)
            assert line is not None and line.customer_number == "1000010"
        finally:
            await watcher.stop()


async def test_postgres_listen_loss_is_noticed_and_reopened(demo_world: World, hashers: ProofHashers) -> None:
    async with world_db("postgres", None, demo_world, hashers) as db:
        cache = CachedDirectory(SqlDirectory(db, hashers=hashers), max_staleness_seconds=0.5)
        source = SqlRevisionSource(db)
        watcher = RevisionWatcher(cache, source, poll_seconds=0.25)
        await watcher.start()
        try:
            assert watcher.listening
            listener = source._listener
            assert isinstance(listener, asyncpg.Connection)
            pid = listener.get_server_pid()
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # The poll re-opens LISTEN on a new connection...
            await wait_for(lambda: watcher.listening and source._listener is not listener)
            # ...and a change is seen (by push or poll) while the cache keeps serving.
            before = cache.revision
            await write(db, f"UPDATE dir_lines SET part = NULL WHERE msisdn = '{ANNA_LINE}'")
            await wait_for(lambda: cache.revision != before)
            assert cache.fresh
        finally:
            await watcher.stop()


# ---------------------------------------------------------------------- round trips
class PgWireCounter:
    """A TCP proxy to PostgreSQL that counts the client's protocol messages by type.

    A round trip is a message the client then waits on: Sync ('S') ends an extended-query
    exchange (Parse/Bind/Execute), Query ('Q') is a simple query (asyncpg sends BEGIN and
    ROLLBACK that way).
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> PgWireCounter:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def round_trips(self) -> int:
        return self.counts["S"] + self.counts["Q"]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)

        async def downstream() -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        task = asyncio.create_task(downstream())
        try:
            while True:  # untyped packets first: SSLRequest / GSSENCRequest, then StartupMessage
                head = await reader.readexactly(4)
                (length,) = struct.unpack("!I", head)
                body = await reader.readexactly(length - 4)
                up_writer.write(head + body)
                await up_writer.drain()
                if struct.unpack("!I", body[:4])[0] not in (80877103, 80877104):
                    break
            while True:
                kind = await reader.readexactly(1)
                head = await reader.readexactly(4)
                (length,) = struct.unpack("!I", head)
                body = await reader.readexactly(length - 4)
                self.counts[kind.decode()] += 1
                up_writer.write(kind + head + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_writer.close()
            await task


async def test_postgres_lookup_is_one_round_trip(demo_world: World, hashers: ProofHashers) -> None:
    async with pg_database() as setup:
        await setup.migrate()
        await import_world(setup, demo_world, hashers=hashers)
        async with PgWireCounter() as wire:
            db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{wire.port}/test", schema=setup.schema)
            try:
                directory = SqlDirectory(db, hashers=hashers)
                await directory.line(ANNA_LINE)  # connect, dialect setup, prepare: once per connection
                await directory.customer("1000001")
                wire.counts.clear()
                for _ in range(20):
                    assert await directory.line(ANNA_LINE) is not None
                    assert await directory.customer("1000001") is not None
                print(f"\nPostgreSQL, 40 lookups: client messages {dict(wire.counts)}")
                assert wire.counts["Q"] == 0  # no BEGIN, no ROLLBACK, no ping
                assert wire.counts["P"] == 0  # prepared once, reused
                assert wire.round_trips() == 40
                # The write engine (a transaction per use, ping on checkout) for comparison.
                for _warm in (False, True):
                    wire.counts.clear()
                    async with db.engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                print(f"PostgreSQL, one warm read on the transactional engine: {dict(wire.counts)}")
            finally:
                await db.close()


async def test_sqlite_lookup_is_one_statement_and_no_transaction(
    tmp_path: Any, demo_world: World, hashers: ProofHashers, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_db("sqlite", tmp_path, demo_world, hashers) as db:
        directory = SqlDirectory(db, hashers=hashers)
        await directory.line(ANNA_LINE)
        statements: list[str] = []
        async with db.reader.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert isinstance(driver, aiosqlite.Connection)
            await driver.set_trace_callback(statements.append)
        hops = Counter[str]()
        original = aiosqlite.Connection._execute

        async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
            hops[getattr(fn, "__name__", type(fn).__name__)] += 1
            return await original(self, fn, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        for _ in range(10):
            assert await directory.line(ANNA_LINE) is not None
        print(f"\nSQLite, 10 lookups: statements {len(statements)}, worker-thread hops {dict(hops)}")
        assert len(statements) == 10
        assert sum(hops.values()) == 10  # one hop to the worker thread per lookup
        assert not any(s.split()[0].upper() in ("BEGIN", "ROLLBACK", "COMMIT") for s in statements)
        assert all(s.lstrip().upper().startswith("SELECT") for s in statements)
