"""``[directory]`` cache keys: validated at start (the message names the key), and wiring."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.database import Database
from gateway.directory.cache import CachedDirectory
from gateway.directory.caching import build_directory_cache
from gateway.directory.sql import SqlDirectory
from gateway.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def settings(**directory: object) -> object:
    return load_settings(
        ROOT / "config" / "gateway.toml", environ={},
        overrides={f"directory.{key}": value for key, value in directory.items()},
    )


@pytest.mark.parametrize(("key", "value"), [
    ("cache_entries", -1),
    ("negative_ttl_seconds", -0.5),
    ("revision_poll_seconds", 0),
    ("revision_poll_seconds", 61),
])
def test_bad_values_are_refused_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"directory.{key}"):
        settings(**{key: value})


async def test_the_sql_directory_is_cached_with_the_configured_bound(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        s = settings(cache_entries=10, negative_ttl_seconds=0.5, revision_poll_seconds=3)
        registry = CollectorRegistry()
        wired = build_directory_cache(s, SqlDirectory(db), registry=registry)  # type: ignore[arg-type]
        assert wired is not None and isinstance(wired.directory, CachedDirectory)
        assert (wired.directory.max_entries, wired.directory.negative_ttl) == (10, 0.5)
        assert wired.directory.max_staleness == 6 and wired.watcher.poll_seconds == 3
        assert registry.get_sample_value("portal_gateway_directory_cache_entries") == 0
        assert build_directory_cache(settings(cache_entries=0), SqlDirectory(db)) is None  # type: ignore[arg-type]
        assert build_directory_cache(s, None) is None  # type: ignore[arg-type]  # http backend: its own TTL
    finally:
        await db.close()
