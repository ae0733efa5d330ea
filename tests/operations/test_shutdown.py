"""Graceful shutdown: a request in flight when the server is asked to exit completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import uvicorn
from prometheus_client import CollectorRegistry

from gateway.app import Components, build_app
from gateway.routes import build_table
from gateway.settings import load_settings
from tests.servers.misbehaving import serve_misbehaving

ROUTES = [{"methods": ["GET"], "path": "/slow", "public": True, "upstream": "bad"}]


async def test_request_in_flight_completes_on_exit(tmp_path: Path) -> None:
    async with serve_misbehaving() as (upstream_url, _):
        settings = load_settings(None, environ={}, overrides={
            "server.data_dir": str(tmp_path),
            "upstreams.bad": {"url": upstream_url, "read_timeout_seconds": 10.0},
        })
        shutdown_ran: list[bool] = []

        async def on_shutdown() -> None:
            shutdown_ran.append(True)

        app = build_app(settings, components=Components(on_shutdown=[on_shutdown]),
                        routes=build_table(ROUTES, "test-routes", settings.upstreams),
                        registry=CollectorRegistry(), access_log_stream=None)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                               timeout_graceful_shutdown=10))
        serving = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as c:
            in_flight = asyncio.create_task(c.get("/slow?s=1"))
            await asyncio.sleep(0.3)
            assert not in_flight.done()
            server.should_exit = True  # what SIGTERM does
            r = await in_flight
            assert r.status_code == 200 and r.json() == {"slow": True}
            await asyncio.wait_for(serving, 15)
        assert shutdown_ran == [True]  # lifespan shutdown ran after the request, not before
        # No new connections once it has exited.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as c:
            try:
                await c.get("/slow?s=0")
                raise AssertionError("the server still answers after exit")
            except httpx.ConnectError:
                pass
