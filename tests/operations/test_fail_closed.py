"""Fail closed and recover: when the session store or the directory stops answering, API
requests get 503 (never 500, never a 200 decided without them) and /_gateway/ready says
which dependency is down; when it is back, the gateway recovers by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gateway.directory.memory import MemoryDirectory
from gateway.directory.server import directory_app
from gateway.directory.world import load_world
from tests.directory.conftest import LoopbackServer
from tests.integration.conftest import ROOT
from tests.integration.test_roles import login_anna, register
from tests.operations.conftest import RedisServer, running_portal, unique_prefix

USAGE = "/api/lines/436641000020/usage"


async def ready(c: httpx.AsyncClient) -> httpx.Response:
    return await c.get("/_gateway/ready")


async def wait_ready(c: httpx.AsyncClient, seconds: float = 15.0) -> httpx.Response:
    r = await ready(c)
    for _ in range(int(seconds / 0.2)):
        if r.status_code == 200:
            break
        await asyncio.sleep(0.2)
        r = await ready(c)
    return r


async def test_store_down_is_503_and_recovers(tmp_path: Path, redis_server: RedisServer) -> None:
    overrides = {"store.backend": "redis", "store.url": redis_server.url, "store.key_prefix": unique_prefix()}
    async with (
        running_portal(tmp_path, **overrides) as run, run.portal.client() as c, run.portal.ops_client() as o
    ):
        r = await ready(o)
        assert r.status_code == 200, r.text
        h = await register(c, "sophie.wagner@example.at", "436641000020", "puk", "20202020")
        assert (await c.get(USAGE, headers=h)).status_code == 200

        redis_server.kill()
        r = await c.get(USAGE, headers=h)
        assert r.status_code == 503, r.text
        assert "20202020" not in r.text
        r = await c.get("/api/status")  # public routes need no store
        assert r.status_code == 200
        r = await ready(o)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["auth_store"]["ok"] is False
        assert "store" in body["checks"]["auth_store"]["message"]
        assert body["checks"]["policy"]["ok"] is True  # only the store is named
        # Logging in needs the store too: 503, not a half-made session.
        r = await c.post("/auth/login/password",
                         json={"login": "anna.huber@example.at", "password": "anna-portal-2025"})
        assert r.status_code == 503, r.text

        await redis_server.start()  # same port, empty: every session is gone
        r = await wait_ready(o)
        assert r.status_code == 200, r.text
        r = await c.get(USAGE, headers=h)
        assert r.status_code == 401, r.text
        h = await login_anna(c)
        assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200


async def test_directory_down_is_503_and_recovers(tmp_path: Path) -> None:
    directory = LoopbackServer(directory_app(MemoryDirectory(load_world(ROOT / "demo" / "directory.yaml"))))
    await directory.start()
    try:
        overrides = {"directory.backend": "http", "directory.url": directory.url,
                     "directory.cache_ttl_seconds": 0.0, "directory.timeout_seconds": 1.0,
                     "directory.seed_file": ""}
        async with (
        running_portal(tmp_path, **overrides) as run, run.portal.client() as c, run.portal.ops_client() as o
    ):
            r = await ready(o)
            assert r.status_code == 200, r.text
            h = await login_anna(c)
            assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200

            await directory.stop()
            r = await c.get("/api/lines/436641000001/usage", headers=h)
            assert r.status_code == 503, r.text
            r = await c.get("/api/customers/1000001/profile", headers=h)
            assert r.status_code == 503, r.text
            r = await ready(o)
            assert r.status_code == 503
            checks = r.json()["checks"]
            assert checks["directory"]["ok"] is False and "directory" in checks["directory"]["message"]
            assert checks["auth_store"]["ok"] is True

            await directory.start()
            r = await wait_ready(o)
            assert r.status_code == 200, r.text
            # The session lives in the store, which never went away: the same login works again.
            assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200
    finally:
        await directory.stop()
