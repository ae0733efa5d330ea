"""Two gateway replicas sharing Redis (sessions, counters, used TOTP steps), one PostgreSQL
database (directory and accounts) and one signing-key directory, behind one "load balancer"
(the test alternates between them). What one replica does, the other knows."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import load_settings
from tests.integration.conftest import ROOT, totp_now
from tests.operations.conftest import portal_overrides
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}
ANNA_TOTP = "JBSWY3DPEHPK3PXP"


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"pgw_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    except OSError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def replicas(tmp_path: Path) -> AsyncIterator[list[str]]:
    backend_port = free_port()
    ports = [free_port(), free_port()]
    prefix = f"pgtest:{uuid.uuid4().hex[:8]}:"
    async with postgres_database() as db_url:
        apps = []
        for port in ports:
            overrides = portal_overrides(tmp_path, port, backend_port)
            overrides.update({
                "database.url": db_url,
                "store.backend": "redis",
                "store.url": "redis://127.0.0.1:6379/0",
                "store.key_prefix": prefix,
                # Both replicas share data_dir: the signing keys (and the demo TOTP key).
                "server.data_dir": str(tmp_path),
            })
            settings = load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=overrides)
            apps.append(build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO()))
        # The backend fetches the JWKS from replica A only: assertions signed by B must verify too.
        backend = create_backend(jwks_url=f"http://127.0.0.1:{ports[0]}/.well-known/jwks.json")
        async with serve_asgi(backend, port_override=backend_port):
            async with serve_asgi(apps[0], port_override=ports[0]) as a:
                async with serve_asgi(apps[1], port_override=ports[1]) as b:
                    yield [a, b]


async def test_session_step_and_logout_are_shared(tmp_path: Path) -> None:
    async with replicas(tmp_path) as (a, b), httpx.AsyncClient(timeout=20) as c:
        r = await c.post(f"{a}/auth/login/password", json=ANNA)
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        code = totp_now(ANNA_TOTP)
        # The pending login started on A is finished on B.
        r = await c.post(f"{b}/auth/login/totp", json={"code": code}, headers=pending)
        assert r.status_code == 200, r.text
        h = {"Authorization": "Bearer " + r.json()["token"]}
        for url in (a, b):
            r = await c.get(f"{url}/api/lines/436641000001/usage", headers=h)
            assert r.status_code == 200, r.text  # B's assertion verifies with A's JWKS
        # The TOTP step used on B is refused on A (replay across replicas).
        r = await c.post(f"{a}/auth/login/password", json=ANNA)
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.post(f"{a}/auth/login/totp", json={"code": code}, headers=pending)
        assert r.status_code in (400, 401), r.text
        # Logout on A ends the session on B.
        r = await c.post(f"{a}/auth/logout", headers=h)
        assert r.status_code in (200, 204), r.text
        r = await c.get(f"{b}/api/lines/436641000001/usage", headers=h)
        assert r.status_code == 401


async def test_lockout_counts_across_replicas(tmp_path: Path) -> None:
    async with replicas(tmp_path) as (a, b), httpx.AsyncClient(timeout=20) as c:
        statuses = []
        for i in range(6):
            r = await c.post(f"{(a, b)[i % 2]}/auth/login/password",
                             json={"login": ANNA["login"], "password": f"wrong-password-{i}"})
            statuses.append(r.status_code)
        # Five failures in 15 minutes lock the account, wherever they arrived; now even the
        # right password is refused, on either replica.
        r = await c.post(f"{a}/auth/login/password", json=ANNA)
        assert r.status_code != 200, (statuses, r.text)
        r = await c.post(f"{b}/auth/login/password", json=ANNA)
        assert r.status_code != 200
