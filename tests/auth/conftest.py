"""Shared fixtures for the auth tests: a movable clock, stores (memory + real Redis)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.database import Database
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore

from .helpers import Clock

REDIS_URL = os.environ.get("PORTAL_GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _redis() -> RedisStore:
    store = RedisStore.from_url(REDIS_URL, prefix=f"pgtest:{uuid.uuid4().hex}:")
    try:
        await store.ping()
    except Exception:  # pragma: no cover - the machine has Redis; CI starts it
        pytest.skip("redis not reachable at " + REDIS_URL)
    return store


async def _drop(store: RedisStore) -> None:
    client = store._client
    async for key in client.scan_iter(match=store._prefix + "*"):
        await client.delete(key)
    await store.close()


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    store = await _redis()
    yield store
    await _drop(store)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[MemoryStore | RedisStore]:
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    rs = await _redis()
    yield rs
    await _drop(rs)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database("sqlite+aiosqlite:///:memory:")
    await database.migrate()
    yield database
    await database.close()
