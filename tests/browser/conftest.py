"""The whole gateway (real policy, auth pages, demo backend) on loopback sockets, for Chromium.

The gateway is `gateway.app.build_app(settings)`, built exactly as `portal-gateway serve` builds
it, so the browser tests exercise the full request path.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PORTAL_GATEWAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class Running:
    url: str
    outbox: Path

    def sms_code(self, to: str) -> str:
        import json
        import re

        texts = [
            json.loads(x)["text"] for x in self.outbox.read_text().splitlines() if json.loads(x)["to"] == to
        ]
        match = re.search(r"\b(\d{6})\b", texts[-1])
        assert match
        return match.group(1)


async def _serve(app: Any, sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "server did not start"
    return server, task


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Running]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    from demo.backend import create_app as create_backend
    from gateway.app import build_app
    from gateway.settings import load_settings

    gw_sock, be_sock = _socket(), _socket()
    gw_url = f"http://127.0.0.1:{gw_sock.getsockname()[1]}"
    be_url = f"http://127.0.0.1:{be_sock.getsockname()[1]}"
    outbox = tmp_path / "sms-outbox.jsonl"
    settings = load_settings(
        REPO / "config" / "gateway.toml",
        environ={},
        overrides={
            "server.public_url": gw_url,
            "server.cookie_secure": False,
            "server.data_dir": str(tmp_path),
            "server.access_log": False,
            "database.url": f"sqlite+aiosqlite:///{tmp_path}/portal.db",
            "directory.seed_file": str(REPO / "demo" / "directory.yaml"),
            "policy.decision_log": "off",
            "policy.watch": False,
            "upstreams.portal": {"url": be_url},
            "auth.demo": True,
            "auth.argon2_time_cost": 1,
            "auth.argon2_memory_kib": 1024,
            "auth.argon2_parallelism": 1,
            "sms.outbox_path": str(outbox),
        },
    )
    app = build_app(settings, access_log_stream=None)
    backend = create_backend(jwks_url=gw_url + "/.well-known/jwks.json")
    servers = [await _serve(app, gw_sock), await _serve(backend, be_sock)]
    try:
        yield Running(gw_url, outbox)
    finally:
        for server, task in servers:
            server.should_exit = True
            await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
