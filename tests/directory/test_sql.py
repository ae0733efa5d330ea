# ruff: noqa: E501  (table-driven cases read best one per line)
"""SQL specifics: migrations from empty on SQLite and PostgreSQL, indexes, 1,000-line customers,
fail closed when the database is gone."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import inspect, text

from gateway.database import DIRECTORY_HEAD, Database, DatabaseError
from gateway.directory.base import DirectoryUnavailable
from gateway.directory.importer import import_world
from gateway.directory.proofs import ProofHashers
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import World, parse_world

DIRECTORY_TABLES = {
    "dir_persons",
    "dir_customers",
    "dir_customer_relations",
    "dir_contracts",
    "dir_lines",
    "dir_invoices",
    "dir_vpns",
}


async def _check_migrates_from_empty(db: Database) -> None:
    assert await db.current_revisions() == set()
    await db.migrate()
    revisions = await db.current_revisions()
    assert revisions  # at the heads: the directory's and any revisions built on it
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert DIRECTORY_TABLES <= tables
    await db.migrate()  # idempotent
    assert await db.current_revisions() == revisions
    await db.ping()


async def test_sqlite_migrates_from_empty(sqlite_db: Database) -> None:
    await _check_migrates_from_empty(sqlite_db)
    async with sqlite_db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_postgres_migrates_from_empty(pg_db: Database) -> None:
    await _check_migrates_from_empty(pg_db)
    async with pg_db.engine.connect() as conn:
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar()
    assert schema == pg_db.schema


def test_directory_head_is_the_first_revision() -> None:
    assert DIRECTORY_HEAD == "0001_directory"


def big_world(n: int) -> World:
    """One company customer with `n` company phones, each with a PUK, plus n small customers."""
    data: dict[str, Any] = {
        "persons": [{"id": f"p-{i}", "name": f"Person {i}"} for i in range(n)],
        "customers": [{"number": "2000000", "name": "Big GmbH", "kind": "framework", "admins": ["p-0"]}]
        + [
            {
                "number": str(3000000 + i),
                "name": f"Member {i}",
                "kind": "business_member",
                "members": [f"p-{i}"],
            }
            for i in range(n)
        ],
        "contracts": [{"id": "ct-big", "customer": "2000000", "kind": "company"}]
        + [
            {
                "id": f"ct-m{i}",
                "customer": str(3000000 + i),
                "kind": "business_member",
                "framework": "2000000",
            }
            for i in range(n)
        ],
        "lines": [
            {
                "msisdn": str(436650000000 + i),
                "contract": "ct-big",
                "customer": "2000000",
                "user": f"p-{i}",
                "puk": f"{i:08d}",
            }
            for i in range(n)
        ],
        "invoices": [
            {
                "number": f"RE-{i}",
                "contract": f"ct-m{i}",
                "customer": str(3000000 + i),
                "issued_on": "2026-10-31",
                "current": True,
            }
            for i in range(n)
        ],
    }
    return parse_world(data, "big")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_thousand_lines(request: pytest.FixtureRequest, backend: str) -> None:
    from .conftest import pg_database  # noqa: PLC0415

    world = big_world(1000)
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{request.getfixturevalue('tmp_path')}/big.db")
        await _thousand(db, world)
        await db.close()
    else:
        async with pg_database() as db:
            await _thousand(db, world)


async def _thousand(db: Database, world: World) -> None:
    await db.migrate()
    started = time.perf_counter()
    await import_world(db, world)  # real (default) hashing profiles
    assert time.perf_counter() - started < 20  # the PUK profile keeps 1,000 lines fast
    d = SqlDirectory(db)
    lines = await d.lines_of_customer("2000000")
    assert len(lines) == 1000
    assert lines[0].msisdn == "436650000000"
    assert await d.verify_puk("436650000999", "00000999") is True
    assert await d.verify_puk("436650000999", "00000998") is False
    rel = await d.relations("p-0")
    assert (
        rel.administers == {"2000000"} and rel.member_of == {"3000000"} and rel.uses_lines == {"436650000000"}
    )
    # Single lookups stay cheap next to a 1,000-line customer.
    started = time.perf_counter()
    for i in range(200):
        assert await d.line(str(436650000000 + i)) is not None
    assert (time.perf_counter() - started) / 200 < 0.01


async def test_every_lookup_uses_an_index(sqlite_db: Database) -> None:
    """The query plans of the protocol's lookups search a B-tree (O(log n)), never scan a table."""
    await sqlite_db.migrate()
    await import_world(sqlite_db, big_world(50))
    queries = [
        "SELECT * FROM dir_persons WHERE id = 'p-1'",
        "SELECT relation, customer_number FROM dir_customer_relations WHERE person_id = 'p-1'",
        "SELECT msisdn FROM dir_lines WHERE user_person_id = 'p-1'",
        "SELECT * FROM dir_customers WHERE number = '2000000'",
        "SELECT * FROM dir_contracts WHERE id = 'ct-big'",
        "SELECT * FROM dir_lines WHERE msisdn = '436650000001'",
        "SELECT * FROM dir_invoices WHERE number = 'RE-1'",
        "SELECT * FROM dir_invoices WHERE contract_id = 'ct-m1' ORDER BY issued_on DESC, number",
        "SELECT * FROM dir_vpns WHERE id = 'v'",
        "SELECT * FROM dir_lines WHERE customer_number = '2000000' ORDER BY msisdn",
        "SELECT * FROM dir_contracts WHERE customer_number = '2000000' ORDER BY id",
    ]
    async with sqlite_db.engine.connect() as conn:
        for query in queries:
            plan = " | ".join(
                str(row[-1]) for row in (await conn.execute(text("EXPLAIN QUERY PLAN " + query))).all()
            )
            assert "SEARCH" in plan and "SCAN" not in plan.replace("SCAN CONSTANT", ""), (query, plan)


async def test_fail_closed_when_database_is_down() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/test")
    d = SqlDirectory(db, hashers=ProofHashers())
    with pytest.raises(DirectoryUnavailable):
        await d.line("436641000020")
    with pytest.raises(DirectoryUnavailable):
        await d.verify_puk("436641000020", "20202020")
    with pytest.raises(DirectoryUnavailable):
        await d.ping()
    with pytest.raises(DatabaseError, match="127.0.0.1:1"):
        await db.ping()
    await db.close()


async def test_fail_closed_without_tables(sqlite_db: Database) -> None:
    with pytest.raises(DirectoryUnavailable):
        await SqlDirectory(sqlite_db).customer("1000001")


async def test_real_kundenkennwort_profile(sqlite_db: Database, demo_world: World) -> None:
    await sqlite_db.migrate()
    await import_world(sqlite_db, demo_world)
    d = SqlDirectory(sqlite_db)
    assert await d.verify_kundenkennwort("1000010", "Mayr-KG-Kennwort") is True
    assert await d.verify_kundenkennwort("1000010", "Mayr-KG-Kennwort!") is False
    async with sqlite_db.engine.connect() as conn:
        stored = (
            await conn.execute(text("SELECT kundenkennwort_hash FROM dir_customers WHERE number='1000010'"))
        ).scalar()
        puk = (
            await conn.execute(text("SELECT puk_hash FROM dir_lines WHERE msisdn='436641000020'"))
        ).scalar()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert puk.startswith("$argon2id$v=19$m=1024,t=1,p=1$")


async def test_replace_overwrites_the_world(
    sqlite_db: Database, demo_world: World, hashers: ProofHashers
) -> None:
    await sqlite_db.migrate()
    await import_world(sqlite_db, demo_world, hashers=hashers)
    d = SqlDirectory(sqlite_db, hashers=hashers)
    small = parse_world(
        {
            "persons": [{"id": "p-x", "name": "X"}],
            "customers": [{"number": "1", "name": "X", "kind": "private", "holders": ["p-x"]}],
        }
    )
    await import_world(sqlite_db, small, replace=True, hashers=hashers)
    assert await d.customer("1000001") is None
    assert (await d.relations("p-x")).holder_of == {"1"}
