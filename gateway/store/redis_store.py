"""The production store: Redis, shared by every gateway replica.

Atomicity across replicas comes from Redis itself: ``SET NX PX`` for
`set_if_absent`, ``GETDEL`` for `pop`, and small Lua scripts (Redis runs a script
as one step) for the rest: `incr` and `incr_unless` (INCR and the first PEXPIRE
together, so a crash between them cannot leave a counter that never expires; the
lock checked in the same step), `decr`, `replace_if_equal` (compare-and-set) and
`get_with_ref` (two reads in one round trip). `get_with_ref` computes its second
key inside the script, which a Redis Cluster would refuse: the gateway's store is
one Redis (or a primary with replicas), not a cluster. Every key gets the configured prefix, so several gateways
(or test runs) can share one Redis. Connection errors become `StoreUnavailable`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.store.base import Store, StoreUnavailable

__all__ = ["RedisStore"]

_INCR = """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"""

_INCR_UNLESS = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"""

_DECR = """
local v = tonumber(redis.call('GET', KEYS[1]))
if v == nil then return 0 end
if v <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
"""

_REPLACE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_GET_WITH_REF = """
local v = redis.call('GET', KEYS[1])
if not v then return {false, false} end
local nl = string.find(v, '\\n', 1, true)
if nl == nil or nl == 1 then return {v, false} end
return {v, redis.call('GET', ARGV[1] .. string.sub(v, 1, nl - 1))}
"""


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisStore(Store):
    def __init__(self, client: aioredis.Redis, *, prefix: str = "pg:") -> None:
        self._client = client
        self._prefix = prefix
        self._incr = client.register_script(_INCR)
        self._incr_unless = client.register_script(_INCR_UNLESS)
        self._decr = client.register_script(_DECR)
        self._replace_if_equal = client.register_script(_REPLACE_IF_EQUAL)
        self._get_with_ref = client.register_script(_GET_WITH_REF)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "pg:", timeout: float = 2.0) -> RedisStore:
        from gateway.store.redis_url import redis_client

        return cls(redis_client(url, timeout=timeout), prefix=prefix)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis store does not answer: {type(exc).__name__}") from exc

    async def get(self, key: str) -> str | None:
        async with self._guard():
            value = await self._client.get(self._k(key))
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl: float) -> None:
        async with self._guard():
            await self._client.set(self._k(key), value, px=_ms(ttl))

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        async with self._guard():
            result = await self._client.set(self._k(key), value, px=_ms(ttl), nx=True)
        return bool(result)

    async def delete(self, key: str) -> None:
        async with self._guard():
            await self._client.delete(self._k(key))

    async def pop(self, key: str) -> str | None:
        async with self._guard():
            value = await self._client.getdel(self._k(key))
        return None if value is None else str(value)

    async def incr(self, key: str, ttl: float) -> int:
        async with self._guard():
            result = await self._incr(keys=[self._k(key)], args=[_ms(ttl)])
        return int(result)

    async def incr_unless(self, key: str, ttl: float, *, unless: str) -> int | None:
        async with self._guard():
            result = await self._incr_unless(keys=[self._k(key), self._k(unless)], args=[_ms(ttl)])
        count = int(result)
        return None if count < 0 else count

    async def decr(self, key: str) -> int:
        async with self._guard():
            result = await self._decr(keys=[self._k(key)])
        return int(result)

    async def replace_if_equal(self, key: str, expected: str, value: str, ttl: float) -> bool:
        async with self._guard():
            result = await self._replace_if_equal(keys=[self._k(key)], args=[expected, value, _ms(ttl)])
        return int(result) == 1

    async def get_with_ref(self, key: str, ref_prefix: str) -> tuple[str | None, str | None]:
        async with self._guard():
            value, ref = await self._get_with_ref(keys=[self._k(key)], args=[self._k(ref_prefix)])
        return (None if value is None else str(value)), (None if ref is None else str(ref))

    async def ttl(self, key: str) -> float | None:
        async with self._guard():
            ms = await self._client.pttl(self._k(key))
        return None if ms is None or int(ms) < 0 else int(ms) / 1000.0

    async def ping(self) -> None:
        async with self._guard():
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()
