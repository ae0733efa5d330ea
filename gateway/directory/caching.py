"""Wire the directory cache from ``[directory]``: cache, revision watcher, metrics, readiness.

Only the SQL directory is wrapped: it has a revision (`gateway.directory.revision`). The
HTTP adapter keeps its own TTL cache (``cache_ttl_seconds``, the bound for that backend).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry

from gateway.directory.cache import CacheCollector, CachedDirectory
from gateway.directory.revision import RevisionWatcher, SqlRevisionSource
from gateway.directory.sql import SqlDirectory
from gateway.settings import Settings

__all__ = ["DirectoryCache", "build_directory_cache"]


@dataclass
class DirectoryCache:
    directory: CachedDirectory
    watcher: RevisionWatcher

    def ready(self) -> tuple[str, bool | Literal["degraded"], str]:
        """Degraded (still serving, uncached) while the revision cannot be confirmed."""
        cache, watcher = self.directory, self.watcher
        if not cache.fresh:
            why = watcher.last_error or "revision not confirmed within the bound"
            return "directory_cache", "degraded", f"bypassed (every lookup asks the database): {why}"
        how = "LISTEN + poll" if watcher.listening else "poll"
        return (
            "directory_cache", True,
            f"revision {cache.revision}, {len(cache)} entries, {how} every {watcher.poll_seconds:g} s",
        )


def build_directory_cache(
    settings: Settings,
    sql_directory: SqlDirectory | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    registry: CollectorRegistry | None = None,
) -> DirectoryCache | None:
    """The cache around the SQL directory, or None (HTTP backend, or ``cache_entries = 0``)."""
    conf = settings.directory
    if sql_directory is None or conf.cache_entries == 0:
        return None
    cache = CachedDirectory(
        sql_directory,
        max_entries=conf.cache_entries,
        negative_ttl_seconds=conf.negative_ttl_seconds,
        max_staleness_seconds=2 * conf.revision_poll_seconds,
        clock=clock,
    )
    watcher = RevisionWatcher(
        cache, SqlRevisionSource(sql_directory.database), poll_seconds=conf.revision_poll_seconds, clock=clock
    )
    if registry is not None:
        registry.register(CacheCollector(cache, listening=lambda: watcher.listening))
    return DirectoryCache(cache, watcher)
