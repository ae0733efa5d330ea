# ruff: noqa: E501  (table-driven cases read best one per line)
"""Fixtures: the demo world in every directory implementation, on real databases and sockets.

PostgreSQL (127.0.0.1:5432, db ``test``) runs each test in its own schema, dropped after.
The reference HTTP service runs under uvicorn on a loopback port chosen by the OS.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text

from deploy.ports import free_port
from gateway.database import Database
from gateway.directory.base import Directory
from gateway.directory.http import HttpDirectory
from gateway.directory.importer import import_world
from gateway.directory.memory import MemoryDirectory
from gateway.directory.proofs import ProofHasher, ProofHashers
from gateway.directory.server import directory_app
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import World, load_world

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo" / "directory.yaml"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def hashers() -> ProofHashers:
    """Cheap argon2id for both proofs: tests verify behaviour, not cost."""
    cheap = ProofHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return ProofHashers(kundenkennwort=cheap, puk=cheap)


@pytest.fixture(scope="session")
def demo_world() -> World:
    return load_world(DEMO)


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}")
    yield db
    await db.close()


async def _pg_available() -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", 5432), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@asynccontextmanager
async def pg_database() -> AsyncIterator[Database]:
    """A Database in a fresh PostgreSQL schema, dropped afterwards."""
    if not await _pg_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    schema = f"dirtest_{uuid.uuid4().hex[:16]}"
    admin = Database(PG_URL)
    async with admin.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(PG_URL, schema=schema)
    try:
        yield db
    finally:
        await db.close()
        async with admin.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.close()


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    async with pg_database() as db:
        yield db


class LoopbackServer:
    """A uvicorn server for an ASGI app on a fixed loopback port that can be stopped and restarted."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(200):
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("reference directory server did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None


class CountingApp:
    """Counts the requests that reach the reference service (to observe the adapter's cache)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@asynccontextmanager
async def serve_world(
    world: World, hashers: ProofHashers
) -> AsyncIterator[tuple[LoopbackServer, CountingApp]]:
    app = CountingApp(directory_app(MemoryDirectory(world, hashers=hashers)))
    server = LoopbackServer(app)
    await server.start()
    try:
        yield server, app
    finally:
        await server.stop()


@pytest.fixture
async def reference_server(
    demo_world: World, hashers: ProofHashers
) -> AsyncIterator[tuple[LoopbackServer, CountingApp]]:
    async with serve_world(demo_world, hashers) as served:
        yield served


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


BACKENDS = ["sqlite", "postgres", "http", "memory"]


@pytest.fixture(params=BACKENDS)
async def directory(
    request: pytest.FixtureRequest, demo_world: World, hashers: ProofHashers, tmp_path: Path
) -> AsyncIterator[Directory]:
    """The demo world behind each implementation of the Directory protocol."""
    kind = request.param
    async with AsyncExitStack() as stack:
        if kind in ("sqlite", "postgres"):
            if kind == "sqlite":
                db = Database(f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}")
                stack.push_async_callback(db.close)
            else:
                db = await stack.enter_async_context(pg_database())
            await db.migrate()
            await import_world(db, demo_world, hashers=hashers)
            d: Directory = SqlDirectory(db, hashers=hashers)
        elif kind == "http":
            server, _ = await stack.enter_async_context(serve_world(demo_world, hashers))
            d = HttpDirectory(server.url, timeout_seconds=2.0)
        else:
            d = MemoryDirectory(demo_world, hashers=hashers)
        stack.push_async_callback(d.close)
        yield d
