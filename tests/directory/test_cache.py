"""The directory cache: every way an entry leaves it, and the freshness bound.

The source is the demo world in a `MemoryDirectory` behind a counter, so each test sees
exactly which lookups reached it; time is a fake clock; the revision source is a fake
whose answers (or failures) the test chooses. The real sources (SQLite, PostgreSQL
triggers, NOTIFY) are tested in test_revision.py and test_cache_gateway.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from gateway.directory.base import DirectoryUnavailable
from gateway.directory.cache import CacheCollector, CachedDirectory
from gateway.directory.caching import DirectoryCache
from gateway.directory.memory import MemoryDirectory
from gateway.directory.proofs import ProofHashers
from gateway.directory.records import LineRecord
from gateway.directory.revision import RevisionWatcher
from gateway.directory.world import World
from tests.directory.conftest import FakeClock

ANNA_LINE = "436641000001"


class CountingSource(MemoryDirectory):
    """The demo world; counts the lookups that reach it and can be edited or broken."""

    def __init__(self, world: World, hashers: ProofHashers) -> None:
        super().__init__(world, hashers=hashers)
        self.calls: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None
        self.overrides: dict[str, LineRecord | None] = {}

    async def line(self, msisdn: str) -> LineRecord | None:
        self.calls[f"line:{msisdn}"] += 1
        if self.gate is not None:
            await self.gate.wait()
        if msisdn in self.overrides:
            return self.overrides[msisdn]
        return await super().line(msisdn)

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        self.calls[f"puk:{msisdn}"] += 1
        return await super().verify_puk(msisdn, candidate)


class FakeRevisions:
    """A revision source whose value, failure and push the test controls."""

    pushes = False

    def __init__(self) -> None:
        self.revision = 1
        self.failing: Exception | None = None
        self.reads = 0

    async def read(self) -> int:
        self.reads += 1
        if self.failing is not None:
            raise self.failing
        return self.revision

    async def listen(self, on_change: Callable[[], None], on_lost: Callable[[], None]) -> bool:
        return False

    async def close(self) -> None:
        return None


@pytest.fixture
def source(demo_world: World, hashers: ProofHashers) -> CountingSource:
    return CountingSource(demo_world, hashers)


def make_cache(source: CountingSource, clock: FakeClock, **kw: float) -> CachedDirectory:
    cache = CachedDirectory(source, clock=clock, **kw)  # type: ignore[arg-type]
    cache.confirm(1, clock())
    return cache


async def test_second_lookup_is_served_from_memory(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock)
    first = await cache.line(ANNA_LINE)
    assert first is not None and first.customer_number == "1000001"
    assert await cache.line(ANNA_LINE) == first
    assert source.calls[f"line:{ANNA_LINE}"] == 1
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


async def test_a_changed_revision_drops_every_entry(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock)
    await cache.line(ANNA_LINE)
    await cache.customer("1000001")
    moved = dataclasses.replace(await source.line(ANNA_LINE), customer_number="1000010")  # type: ignore[type-var]
    source.overrides[ANNA_LINE] = moved
    cache.confirm(1, clock())  # same revision: the old answer stays (nothing told us)
    assert (await cache.line(ANNA_LINE)).customer_number == "1000001"  # type: ignore[union-attr]
    cache.confirm(2, clock())  # the write bumped the revision
    assert len(cache) == 0
    assert (await cache.line(ANNA_LINE)).customer_number == "1000010"  # type: ignore[union-attr]
    assert cache.stats.invalidations == 1


async def test_a_lookup_in_flight_during_a_change_does_not_refill_the_old_fact(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = make_cache(source, clock)
    source.gate = asyncio.Event()
    in_flight = asyncio.create_task(cache.line(ANNA_LINE))  # reads the old line...
    await asyncio.sleep(0)
    cache.confirm(2, clock())  # ...while the revision moves on
    source.gate.set()
    old = await in_flight
    assert old is not None and old.customer_number == "1000001"  # answered, but not kept
    assert len(cache) == 0
    source.overrides[ANNA_LINE] = dataclasses.replace(old, customer_number="1000010")
    assert (await cache.line(ANNA_LINE)).customer_number == "1000010"  # type: ignore[union-attr]


async def test_negative_answers_are_cached_briefly(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock, negative_ttl_seconds=2.0, max_staleness_seconds=1e9)
    unknown = "436640000000"
    for _ in range(50):  # a flood of the same unknown id asks the source once
        assert await cache.line(unknown) is None
    assert source.calls[f"line:{unknown}"] == 1
    clock.now += 1.9
    assert await cache.line(unknown) is None
    assert source.calls[f"line:{unknown}"] == 1
    # The line is created; once the negative entry expired, it is seen without a revision change.
    source.overrides[unknown] = LineRecord(unknown, "ct-1000001", "1000001")
    clock.now += 0.2
    assert await cache.line(unknown) is not None
    assert source.calls[f"line:{unknown}"] == 2
    assert cache.stats.negative_expired == 1
    # A positive answer does not expire by time (only by revision).
    clock.now += 1000
    await cache.line(unknown)
    assert source.calls[f"line:{unknown}"] == 2


async def test_a_flood_of_distinct_unknown_ids_stays_within_the_bound(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = make_cache(source, clock, max_entries=100)
    for i in range(1000):
        await cache.line(f"4366499{i:05d}")
    assert len(cache) == 100
    assert cache.stats.evictions == 900


async def test_least_recently_used_entry_is_evicted_first(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock, max_entries=2)
    a, b, c = "436641000001", "436641000010", "436641000011"
    await cache.line(a)
    await cache.line(b)
    await cache.line(a)  # a is now the most recently used
    await cache.line(c)  # evicts b
    assert cache.stats.evictions == 1
    await cache.line(a)
    assert source.calls[f"line:{a}"] == 1
    await cache.line(b)
    assert source.calls[f"line:{b}"] == 2


async def test_answers_past_the_staleness_bound_are_not_served(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock, max_staleness_seconds=2.0)
    await cache.line(ANNA_LINE)
    clock.now += 2.0
    await cache.line(ANNA_LINE)
    assert source.calls[f"line:{ANNA_LINE}"] == 1  # still within the bound
    clock.now += 0.01  # no revision check for longer than the bound (watcher stuck)
    assert not cache.fresh
    await cache.line(ANNA_LINE)
    await cache.line(ANNA_LINE)
    assert source.calls[f"line:{ANNA_LINE}"] == 3  # every lookup asks the source
    assert cache.stats.bypassed == 2
    cache.confirm(1, clock())  # a check succeeded again: the (same-revision) entry serves
    await cache.line(ANNA_LINE)
    assert source.calls[f"line:{ANNA_LINE}"] == 3


async def test_poll_loss_drops_the_cache_and_fails_closed_with_the_source(
    source: CountingSource, clock: FakeClock
) -> None:
    cache = CachedDirectory(source, clock=clock, max_staleness_seconds=2.0)
    revisions = FakeRevisions()
    watcher = RevisionWatcher(cache, revisions, poll_seconds=1.0, clock=clock)
    wired = DirectoryCache(cache, watcher)
    assert await watcher.check()
    await cache.line(ANNA_LINE)
    assert wired.ready()[1] is True
    revisions.failing = DirectoryUnavailable("database down")
    assert not await watcher.check()
    assert len(cache) == 0 and not cache.fresh
    name, ok, message = wired.ready()
    assert (name, ok) == ("directory_cache", "degraded") and "database down" in message
    await cache.line(ANNA_LINE)
    assert source.calls[f"line:{ANNA_LINE}"] == 2  # served by the source, not from memory

    async def broken(msisdn: str) -> LineRecord | None:
        raise DirectoryUnavailable("down")

    source.line = broken  # type: ignore[method-assign]
    with pytest.raises(DirectoryUnavailable):  # → 503, never an old answer
        await cache.line(ANNA_LINE)
    revisions.failing = None
    del source.line
    assert await watcher.check()
    assert cache.fresh and wired.ready()[1] is True


async def test_a_hung_revision_read_counts_as_loss(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock)

    class Hanging(FakeRevisions):
        async def read(self) -> int:
            await asyncio.Event().wait()
            return 0

    watcher = RevisionWatcher(cache, Hanging(), poll_seconds=0.05, clock=clock)
    await cache.line(ANNA_LINE)
    assert not await watcher.check()
    assert len(cache) == 0 and not cache.fresh


async def test_watcher_task_follows_the_revision(source: CountingSource, clock: FakeClock) -> None:
    cache = CachedDirectory(source, clock=clock)
    revisions = FakeRevisions()
    watcher = RevisionWatcher(cache, revisions, poll_seconds=0.01, clock=clock)
    await watcher.start()
    try:
        assert cache.revision == 1 and cache.fresh
        await cache.line(ANNA_LINE)
        revisions.revision = 7
        for _ in range(500):
            if cache.revision == 7:
                break
            await asyncio.sleep(0.01)
        assert cache.revision == 7 and len(cache) == 0
    finally:
        await watcher.stop()


async def test_proofs_are_never_cached(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock)
    assert await cache.verify_puk(ANNA_LINE, "01010101")
    assert not await cache.verify_puk(ANNA_LINE, "99999999")
    assert source.calls[f"puk:{ANNA_LINE}"] == 2


async def test_lists_are_copies(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock)
    lines = await cache.lines_of_customer("1000010")
    lines.clear()
    assert len(await cache.lines_of_customer("1000010")) == 2


async def test_metrics(source: CountingSource, clock: FakeClock) -> None:
    cache = make_cache(source, clock, max_entries=1)
    registry = CollectorRegistry()
    registry.register(CacheCollector(cache, listening=lambda: False))
    await cache.line(ANNA_LINE)
    await cache.line(ANNA_LINE)
    await cache.line("436641000010")
    value = registry.get_sample_value
    assert value("portal_gateway_directory_cache_hits_total") == 1
    assert value("portal_gateway_directory_cache_misses_total") == 2
    assert value("portal_gateway_directory_cache_evictions_total") == 1
    assert value("portal_gateway_directory_cache_entries") == 1
    assert value("portal_gateway_directory_cache_fresh") == 1
    assert value("portal_gateway_directory_cache_revision") == 1
    assert value("portal_gateway_directory_cache_listening") == 0
    cache.lose()
    assert value("portal_gateway_directory_cache_fresh") == 0
    assert value("portal_gateway_directory_cache_entries") == 0
