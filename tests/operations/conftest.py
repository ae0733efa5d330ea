"""Operations fixtures: the whole gateway with chosen overrides (and the app object, for
its reload hook), a redis-server of the test's own that can be killed and restarted, and
the reference directory service on a fixed port that can be stopped and started."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import load_settings
from tests.integration.conftest import (
    ROOT,
    Portal,
    portal,  # noqa: F401  (the integration fixture, as-is)
)
from tests.integration.conftest import (
    portal_overrides as integration_overrides,
)
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port


@dataclass
class Running:
    portal: Portal
    app: Any
    registry: CollectorRegistry


def portal_overrides(tmp_path: Path, gw_port: int, backend_port: int) -> dict[str, Any]:
    """The integration fixture's settings (demo.toml on temp paths)."""
    return integration_overrides(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}")


@asynccontextmanager
async def running_portal(tmp_path: Path, **overrides: Any) -> AsyncIterator[Running]:
    gw_port, backend_port = free_port(), free_port()
    merged = {**portal_overrides(tmp_path, gw_port, backend_port), **overrides}
    settings = load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=merged)
    log = io.StringIO()
    registry = CollectorRegistry()
    app = build_app(settings, registry=registry, access_log_stream=log, serve_ops=True)
    backend = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal")
    ops_url = f"http://127.0.0.1:{settings.server.ops_port}"
    async with serve_asgi(backend, port_override=backend_port) as backend_url:
        async with serve_asgi(app, port_override=gw_port) as url:
            portal = Portal(url, backend_url, tmp_path / "sms-outbox.jsonl", log, tmp_path, ops_url)
            yield Running(portal, app, registry)


class RedisServer:
    """A redis-server of this test only, on a free loopback port; kill and restart at will."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.exe = exe
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            for _ in range(100):
                try:
                    if await client.ping():
                        return
                except Exception:
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        server.kill()


def unique_prefix() -> str:
    return f"opstest:{uuid.uuid4().hex[:12]}:"
