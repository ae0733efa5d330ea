"""The Store protocol, run against both the memory store and a real Redis."""

from __future__ import annotations

import asyncio

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore

from .helpers import Clock


async def test_set_get_delete(store: Store) -> None:
    assert await store.get("a") is None
    await store.set("a", "1", 60)
    assert await store.get("a") == "1"
    await store.delete("a")
    assert await store.get("a") is None


async def test_set_if_absent_only_first_wins(store: Store) -> None:
    assert await store.set_if_absent("k", "x", 60) is True
    assert await store.set_if_absent("k", "y", 60) is False
    assert await store.get("k") == "x"


async def test_pop_is_single_use(store: Store) -> None:
    await store.set("code", "123", 60)
    results = await asyncio.gather(*(store.pop("code") for _ in range(5)))
    assert results.count("123") == 1
    assert await store.get("code") is None


async def test_incr_counts_atomically(store: Store) -> None:
    counts = await asyncio.gather(*(store.incr("c", 60) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))
    ttl = await store.ttl("c")
    assert ttl is not None and 0 < ttl <= 60


async def test_incr_unless_gives_distinct_counts_and_stops_at_a_lock(store: Store) -> None:
    counts = await asyncio.gather(*(store.incr_unless("n", 60, unless="lock") for _ in range(20)))
    assert sorted(c for c in counts if c is not None) == list(range(1, 21))
    ttl = await store.ttl("n")
    assert ttl is not None and 0 < ttl <= 60
    await store.set("lock", "1", 60)
    assert await store.incr_unless("n", 60, unless="lock") is None
    assert await store.get("n") == "20"  # a refused attempt is not counted


async def test_decr_gives_back_and_never_creates(store: Store) -> None:
    assert await store.decr("absent") == 0
    assert await store.get("absent") is None
    await store.incr("d", 60)
    assert await store.decr("d") == 0
    assert await store.decr("d") == 0  # never below zero


async def test_replace_if_equal_is_compare_and_set(store: Store) -> None:
    assert await store.replace_if_equal("r", "old", "new", 60) is False  # absent: never created
    assert await store.get("r") is None
    await store.set("r", "old", 60)
    results = await asyncio.gather(*(store.replace_if_equal("r", "old", f"new{i}", 60) for i in range(10)))
    assert results.count(True) == 1
    assert await store.replace_if_equal("r", "old", "again", 60) is False


async def test_get_with_ref_reads_the_named_value_too(store: Store) -> None:
    await store.set("rec", "acc_7\n{}", 60)
    assert await store.get_with_ref("rec", "ep:") == ("acc_7\n{}", None)
    await store.set("ep:acc_7", "e1", 60)
    assert await store.get_with_ref("rec", "ep:") == ("acc_7\n{}", "e1")
    await store.set("plain", "{}", 60)
    assert await store.get_with_ref("plain", "ep:") == ("{}", None)
    await store.set("noref", "\n{}", 60)
    assert await store.get_with_ref("noref", "ep:") == ("\n{}", None)
    assert await store.get_with_ref("missing", "ep:") == (None, None)


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_memory_expiry_follows_clock(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    await store.set("a", "1", 10)
    await store.incr("n", 10)
    clock.advance(9.9)
    assert await store.get("a") == "1"
    assert await store.incr("n", 10) == 2
    clock.advance(0.2)
    assert await store.get("a") is None
    assert await store.incr("n", 10) == 1
    assert await store.set_if_absent("a", "2", 5) is True


async def test_redis_expiry_is_real(redis_store: RedisStore) -> None:
    await redis_store.set("short", "1", 0.05)
    assert await redis_store.incr("cnt", 0.05) == 1
    await asyncio.sleep(0.15)
    assert await redis_store.get("short") is None
    assert await redis_store.incr("cnt", 0.05) == 1


async def test_two_redis_replicas_share_used_steps(redis_store: RedisStore) -> None:
    other = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix=redis_store._prefix)
    try:
        assert await redis_store.set_if_absent("totp:acc:1", "1", 90) is True
        assert await other.set_if_absent("totp:acc:1", "1", 90) is False
    finally:
        await other.close()


async def test_redis_down_is_store_unavailable() -> None:
    import pytest

    from gateway.store.base import StoreUnavailable

    store = RedisStore.from_url("redis://127.0.0.1:1/0", prefix="x:", timeout=0.5)
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.get("a")
    await store.close()
