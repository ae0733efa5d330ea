"""The cache does not outlive its database: a gateway cut off from PostgreSQL stops
answering from memory within the staleness bound, says so, and recovers.

The gateway reaches PostgreSQL through a TCP proxy the test can cut (every connection
closed, new ones refused) and restore on the same port. While cut, Anna's requests,
answered from memory a moment ago, must turn into 503 (never a 200 decided on facts
nobody can confirm); readiness shows ``directory_cache`` degraded and the metric
``portal_gateway_directory_cache_fresh`` is 0. Restored, the requests succeed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import load_settings
from tests.directory.test_cache_gateway import ANNA_LINE, login_anna, postgres_database
from tests.integration.conftest import ROOT, portal_overrides
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

POLL = 0.25


class CuttableProxy:
    """127.0.0.1:port → PostgreSQL; `cut()` drops every connection and refuses new ones."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


async def wait_until(predicate: object, timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not await predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_cut_off_gateway_stops_serving_from_memory(tmp_path: Path) -> None:
    async with postgres_database() as direct_url:
        proxy = CuttableProxy()
        await proxy.start()
        try:
            via_proxy = direct_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
            gw_port, backend_port = free_port(), free_port()
            overrides = portal_overrides(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}")
            overrides.update({"database.url": via_proxy, "directory.revision_poll_seconds": POLL,
                              "policy.decision_log": "off"})
            settings = load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=overrides)
            registry = CollectorRegistry()
            app = build_app(settings, registry=registry, access_log_stream=io.StringIO(), serve_ops=True)
            upstream = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json")
            async with serve_asgi(upstream, port_override=backend_port), \
                    serve_asgi(app, port_override=gw_port) as url, \
                    httpx.AsyncClient(base_url=url, timeout=30) as c:
                headers = await login_anna(c)
                for _ in range(5):
                    r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=headers)
                    assert r.status_code == 200, r.text
                hits_before = registry.get_sample_value("portal_gateway_directory_cache_hits_total")
                assert hits_before and hits_before > 0  # served from memory

                await proxy.cut()
                cut_at = time.monotonic()
                statuses: list[tuple[float, int]] = []

                async def refused() -> bool:
                    sent = time.monotonic()
                    r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=headers)
                    statuses.append((sent, r.status_code))
                    return r.status_code == 503

                await wait_until(refused)
                late = [s for sent, s in statuses if sent > cut_at + 2 * POLL]
                assert all(s == 503 for s in late), statuses
                assert registry.get_sample_value("portal_gateway_directory_cache_fresh") == 0
                assert registry.get_sample_value("portal_gateway_directory_cache_entries") == 0
                async with httpx.AsyncClient(timeout=30) as ops:  # the operations listener
                    r = await ops.get(f"http://127.0.0.1:{settings.server.ops_port}/_gateway/ready")
                assert r.status_code == 503  # the database does not answer at all
                checks = r.json()["checks"]
                assert checks["directory_cache"].get("degraded") is True, checks
                assert "bypassed" in checks["directory_cache"]["message"]
                for _ in range(5):  # still 503, whatever was cached before
                    r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=headers)
                    assert r.status_code == 503

                await proxy.start()

                async def served() -> bool:
                    r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=headers)
                    return r.status_code == 200

                await wait_until(served)

                async def fresh() -> bool:
                    return registry.get_sample_value("portal_gateway_directory_cache_fresh") == 1

                await wait_until(fresh)
                print(f"\nwhile cut: {[s for _, s in statuses]}")
        finally:
            await proxy.cut()
