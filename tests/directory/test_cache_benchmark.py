"""Micro-benchmark, printed (never asserted): what the policy's resolver pays per request
for Anna's actor and her line, uncached (each lookup a database read) and cached.

Run with ``-s`` to see the table. "before" is the SQL directory on the transactional
engine (pool ping, BEGIN/ROLLBACK; on SQLite five thread hops a read), as every lookup went
before the autocommit reader and SQLite's one-hop reads.
"""

from __future__ import annotations

import time
from pathlib import Path

from gateway.directory.base import Directory
from gateway.directory.cache import CachedDirectory
from gateway.directory.proofs import ProofHashers
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import World
from gateway.policy.resolver import Resolver
from gateway.principal import Principal
from tests.directory.test_revision import world_db

ANNA = Principal(subject="acc_anna", access_level="full", role="customer", bound_customer="1000001",
                 auth_methods=frozenset({"password", "totp"}))
ROUNDS = 300


async def per_request(directory: Directory) -> float:
    """Median microseconds of actor + resource resolution for one request."""
    resolver = Resolver(directory, time.time)
    samples: list[float] = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await resolver.actor(ANNA)
        await resolver.resource(ANNA, "line", "436641000001")
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return samples[len(samples) // 2]


async def test_print_resolver_cost(tmp_path: Path, demo_world: World, hashers: ProofHashers) -> None:
    rows: list[str] = []
    for kind in ("sqlite", "postgres"):
        async with world_db(kind, tmp_path, demo_world, hashers) as db:
            reader = db.reader
            db.reader = db.engine  # before: the transactional engine, through SQLAlchemy's adapter
            old = SqlDirectory(db, hashers=hashers)
            old._sqlite = None
            before = await per_request(old)
            db.reader = reader
            sql = SqlDirectory(db, hashers=hashers)
            uncached = await per_request(sql)
            cache = CachedDirectory(sql, max_staleness_seconds=1e9)
            cache.confirm(1, time.monotonic())
            cached = await per_request(cache)
            rows.append(f"| {kind} | {before:8.0f} | {uncached:8.0f} | {cached:6.1f} |")
    print("\nresolver, Anna's actor + her line, median of", ROUNDS, "requests (µs)")
    print("| database | before | uncached | cached |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
