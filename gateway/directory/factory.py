"""Choose and build the configured directory (``[directory] backend``).

- ``sql``: `SqlDirectory` on the shared `Database`. The schema is migrated first (idempotent),
  and when ``seed_file`` is set and the directory holds no customer yet, that world is
  imported: the demo starts with its people, and a production directory is never overwritten.
- ``http``: `HttpDirectory` on ``directory.url`` with the configured TTL and timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.database import Database
from gateway.directory.base import Directory
from gateway.directory.http import HttpDirectory
from gateway.directory.importer import import_world
from gateway.directory.proofs import ProofHashers
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import load_world
from gateway.settings import Settings

__all__ = ["build_directory"]

log = logging.getLogger("gateway.directory")


async def build_directory(
    settings: Settings,
    database: Database | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    hashers: ProofHashers | None = None,
) -> Directory:
    """The directory the settings ask for; raises `WorldError` for a bad seed file."""
    conf = settings.directory
    if conf.backend == "http":
        return HttpDirectory(
            conf.url,
            timeout_seconds=conf.timeout_seconds,
            cache_ttl_seconds=conf.cache_ttl_seconds,
            clock=clock,
        )
    if database is None:
        raise ValueError('directory.backend = "sql" needs the database')
    await database.migrate()
    directory = SqlDirectory(database, hashers=hashers)
    if conf.seed_file and await directory.is_empty():
        path = settings.path(conf.seed_file)
        summary = await import_world(database, load_world(path), hashers=directory.hashers)
        log.info("directory seeded from %s: %s", path, summary)
    return directory
