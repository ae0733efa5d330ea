"""Short-lived state with TTLs (sessions, challenges, counters): memory | Redis.

`build_store(settings, clock=...)` picks the implementation named in ``[store] backend``.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.settings import Settings
from gateway.store.base import Store, StoreUnavailable
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore

__all__ = ["MemoryStore", "RedisStore", "Store", "StoreUnavailable", "build_store"]


def build_store(settings: Settings, *, clock: Callable[[], float]) -> Store:
    """The configured store; the memory store only works with one worker (settings checks that)."""
    if settings.store.backend == "redis":
        return RedisStore.from_url(settings.store.url, prefix=settings.store.key_prefix)
    return MemoryStore(clock=clock)
