"""Directory reads under concurrency (gateway/directory/sqlite_reads.py, the reader pool of gateway/database.py).

More parallel reads than the reader pool keeps means overflow connections, which the pool
closes when they come back. An aiosqlite connection is a thread; closing it is an await, so
giving a connection back from plain sync code failed (`MissingGreenlet`, logged by the pool)
and left that connection's thread running: one leaked thread per overflow read, under load."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import event

from gateway.database import Database
from gateway.directory.importer import import_world
from gateway.directory.proofs import ProofHashers
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import World
from gateway.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]

ANNA_LINE = "436641000001"


async def test_parallel_reads_leak_no_connection_and_log_no_error(
    sqlite_db: Database, demo_world: World, hashers: ProofHashers, caplog: pytest.LogCaptureFixture
) -> None:
    await sqlite_db.migrate()
    await import_world(sqlite_db, demo_world, hashers=hashers)
    directory = SqlDirectory(sqlite_db, hashers=hashers)
    assert await directory.line(ANNA_LINE) is not None
    threads_before = threading.active_count()
    caplog.set_level(logging.ERROR)
    for _ in range(5):
        lines = await asyncio.gather(*(directory.line(ANNA_LINE) for _ in range(64)))
        assert all(line is not None and line.msisdn == ANNA_LINE for line in lines)
    await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors][:3]
    # The pool keeps what it may keep; every overflow connection is closed, with its thread.
    pool = sqlite_db.reader.sync_engine.pool
    assert threading.active_count() <= threads_before + pool.size(), (threading.active_count(), threads_before)



async def _reads_stay_in_a_pool_of_three(db: Database, world: World, hashers: ProofHashers) -> None:
    """64 reads at once, three times over, on a pool of 3: three connections in all.

    Opening one connection per read beyond the pool (and closing it on return) made a
    cold, parallel load pay a connection set-up per read."""
    await db.migrate()
    await import_world(db, world, hashers=hashers)
    opened: list[object] = []
    event.listen(db.reader.sync_engine, "connect", lambda conn, record: opened.append(conn))
    directory = SqlDirectory(db, hashers=hashers)
    for _ in range(3):
        lines = await asyncio.gather(*(directory.line(ANNA_LINE) for _ in range(64)))
        assert all(line is not None and line.msisdn == ANNA_LINE for line in lines)
    assert 1 <= len(opened) <= 3


async def test_sqlite_reads_share_a_fixed_pool(tmp_path: Path, demo_world: World, hashers: ProofHashers) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}", reader_pool_size=3)
    try:
        await _reads_stay_in_a_pool_of_three(db, demo_world, hashers)
    finally:
        await db.close()


async def test_postgres_reads_share_a_fixed_pool(pg_db: Database, demo_world: World, hashers: ProofHashers) -> None:
    db = Database(pg_db.url, schema=pg_db.schema, reader_pool_size=3)
    try:
        await _reads_stay_in_a_pool_of_three(db, demo_world, hashers)
    finally:
        await db.close()


@pytest.mark.parametrize("value", [0, -1, 201])
def test_a_reader_pool_size_out_of_range_is_refused_naming_the_key(value: int) -> None:
    with pytest.raises(SettingsError, match=r"database\.reader_pool_size"):
        load_settings(ROOT / "config" / "gateway.toml", environ={}, overrides={"database.reader_pool_size": value})


def test_the_reader_pool_size_reaches_the_reader(tmp_path: Path) -> None:
    s = load_settings(ROOT / "config" / "gateway.toml", environ={}, overrides={
        "database.reader_pool_size": 5, "database.url": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"})
    db = Database.from_settings(s.database)
    assert db.reader.sync_engine.pool.size() == 5  # type: ignore[attr-defined]
