# ruff: noqa: E501  (table-driven cases read best one per line)
"""build_directory: backend choice and the seed file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.database import Database
from gateway.directory.factory import build_directory
from gateway.directory.http import HttpDirectory
from gateway.directory.importer import import_world
from gateway.directory.proofs import ProofHashers
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import parse_world
from gateway.settings import DirectorySettings, Settings

from .conftest import DEMO


async def test_sql_with_seed_file_seeds_an_empty_directory(
    sqlite_db: Database, hashers: ProofHashers
) -> None:
    settings = Settings(directory=DirectorySettings(seed_file=str(DEMO)))
    d = await build_directory(settings, sqlite_db, hashers=hashers)
    assert isinstance(d, SqlDirectory)
    assert (await d.line("436641000020")) is not None
    assert await d.verify_puk("436641000020", "20202020")


async def test_seed_file_never_overwrites(sqlite_db: Database, hashers: ProofHashers) -> None:
    await sqlite_db.migrate()
    own = parse_world({"customers": [{"number": "1", "name": "Own", "kind": "private"}]})
    await import_world(sqlite_db, own, hashers=hashers)
    settings = Settings(directory=DirectorySettings(seed_file=str(DEMO)))
    d = await build_directory(settings, sqlite_db, hashers=hashers)
    assert await d.customer("1") is not None
    assert await d.customer("1000001") is None


async def test_sql_without_seed_is_empty_but_migrated(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/sub/dir/portal.db")  # directories are created
    d = await build_directory(Settings(), db)
    assert await d.customer("1000001") is None
    await d.ping()
    await db.close()


async def test_http_backend() -> None:
    settings = Settings(
        directory=DirectorySettings(
            backend="http", url="http://127.0.0.1:9/dir", cache_ttl_seconds=7, timeout_seconds=0.5
        )
    )
    d = await build_directory(settings, None)
    assert isinstance(d, HttpDirectory)
    assert d.ttl == 7 and d.url == "http://127.0.0.1:9/dir"
    await d.close()


async def test_relative_sqlite_path_is_under_base_dir(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), base_dir=str(tmp_path))
    db = Database.from_settings(settings.database, base_dir=settings.base_dir)
    assert db.url.database == str(tmp_path / "var" / "portal.db")
    await db.close()
