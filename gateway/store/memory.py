"""The embedded store: a dict with expiry times, for one process only.

Time comes from the injected clock so tests can move it. Every operation is a
single synchronous step inside the event loop, which makes them atomic for the
one process that uses this store (settings refuse memory state with more than
one worker).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.store.base import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    def __init__(self, *, clock: Callable[[], float], max_keys: int = 1_000_000) -> None:
        self._clock = clock
        self._data: dict[str, tuple[str, float]] = {}
        self._max_keys = max_keys

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= self._clock():
            del self._data[key]
            return None
        return value

    def _put(self, key: str, value: str, ttl: float) -> None:
        if len(self._data) >= self._max_keys:
            self._sweep()
        self._data[key] = (value, self._clock() + max(ttl, 0.0))

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._put(key, value, ttl)

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def pop(self, key: str) -> str | None:
        value = self._live(key)
        self._data.pop(key, None)
        return value

    async def incr(self, key: str, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._put(key, "1", ttl)
            return 1
        count = int(current) + 1
        self._data[key] = (str(count), self._data[key][1])
        return count

    async def incr_unless(self, key: str, ttl: float, *, unless: str) -> int | None:
        if self._live(unless) is not None:
            return None
        return await self.incr(key, ttl)

    async def decr(self, key: str) -> int:
        current = self._live(key)
        if current is None:
            return 0
        count = max(int(current) - 1, 0)
        self._data[key] = (str(count), self._data[key][1])
        return count

    async def replace_if_equal(self, key: str, expected: str, value: str, ttl: float) -> bool:
        if self._live(key) != expected:
            return False
        self._put(key, value, ttl)
        return True

    async def get_with_ref(self, key: str, ref_prefix: str) -> tuple[str | None, str | None]:
        value = self._live(key)
        if value is None:
            return None, None
        ref, newline, _ = value.partition("\n")
        return value, (self._live(ref_prefix + ref) if newline and ref else None)

    async def ttl(self, key: str) -> float | None:
        if self._live(key) is None:
            return None
        return self._data[key][1] - self._clock()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
