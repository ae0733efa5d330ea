"""The production store: Redis, shared by every gateway replica.

Atomicity across replicas comes from Redis itself: ``SET NX PX`` for
`set_if_absent`, ``GETDEL`` for `pop`, and a tiny Lua script for `incr` (INCR and
the first PEXPIRE in one step, so a crash between them cannot leave a counter
that never expires). Every key gets the configured prefix, so several gateways
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


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisStore(Store):
    def __init__(self, client: aioredis.Redis, *, prefix: str = "pg:") -> None:
        self._client = client
        self._prefix = prefix
        self._incr = client.register_script(_INCR)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "pg:", timeout: float = 2.0) -> RedisStore:
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        return cls(client, prefix=prefix)

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

    async def ttl(self, key: str) -> float | None:
        async with self._guard():
            ms = await self._client.pttl(self._k(key))
        return None if ms is None or int(ms) < 0 else int(ms) / 1000.0

    async def ping(self) -> None:
        async with self._guard():
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()
