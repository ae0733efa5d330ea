"""The decision cache: bounded, least-recently-used entries leave first.

One cache per engine (so per policy revision: a reload starts empty). Keys are
the frozen facts of a decision (actor, action, resource), so a directory change
that alters a fact produces a different key and can never hit an old verdict.
At capacity the coldest entry goes, one at a time: clearing everything would
turn a full cache into a storm of uncached decisions. Counters are plain ints
(one event loop per worker), exported at scrape time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CacheStats", "DecisionCache"]

V = TypeVar("V")


@dataclass(slots=True)
class CacheStats:
    """Hits, misses and evictions of every cache that shares it (all engines of one Authorizer)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class DecisionCache(Generic[V]):
    def __init__(self, capacity: int, stats: CacheStats | None = None) -> None:
        if capacity < 0:
            raise ValueError("cache capacity must not be negative")
        self.capacity = capacity
        self.stats = stats if stats is not None else CacheStats()
        self._entries: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        """The cached value (now the most recently used), or None. Raises TypeError on unhashable keys."""
        entries = self._entries
        value = entries.get(key)
        if value is None:
            self.stats.misses += 1
            return None
        entries.move_to_end(key)
        self.stats.hits += 1
        return value

    def put(self, key: Hashable, value: V) -> None:
        if self.capacity == 0:
            return
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        while len(entries) > self.capacity:
            entries.popitem(last=False)
            self.stats.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries
