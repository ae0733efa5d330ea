"""PostgreSQL restarted under load (a server of the test's own: initdb + pg_ctl on a free port).
Reads during the restart are answered from the directory cache or 503 — never a 500, never a
wrong decision; registrations (writes) are done or refused with a clear answer, never half
done; afterwards everything works again and the account table is consistent."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from deploy.postgres import OwnPostgres, PostgresMissing
from gateway.app import build_app
from gateway.settings import load_settings
from tests.integration.conftest import ROOT
from tests.integration.test_roles import login_anna
from tests.operations.conftest import portal_overrides
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

USAGE = "/api/lines/436641000001/usage"
FOREIGN = "/api/lines/436641000020/usage"


@asynccontextmanager
async def gateway_on(tmp_path: Path, db_url: str) -> AsyncIterator[str]:
    gw_port, backend_port = free_port(), free_port()
    overrides = portal_overrides(tmp_path, gw_port, backend_port)
    overrides["database.url"] = db_url
    settings = load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=overrides)
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    backend = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json")
    async with serve_asgi(backend, port_override=backend_port), serve_asgi(app, port_override=gw_port) as url:
        yield url


async def test_postgres_restart_under_load(tmp_path: Path) -> None:
    # Outside pytest's tmp directory: the postgres user cannot enter root's (mode 0700).
    work = Path(tempfile.mkdtemp(prefix="pgw-postgres-"))
    work.chmod(0o755)
    try:
        pg = OwnPostgres(work)
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    try:
        async with gateway_on(tmp_path, pg.url) as url, httpx.AsyncClient(base_url=url, timeout=20) as c:
            anna = await login_anna(c)
            reads: list[tuple[str, int]] = []
            writes: list[int] = []
            odd: list[str] = []
            phase = ["before"]
            stop = asyncio.Event()

            async def read() -> None:
                while not stop.is_set():
                    r = await c.get(USAGE, headers=anna)
                    reads.append(("own", r.status_code))
                    if r.status_code not in (200, 503):
                        odd.append(f"{phase[0]} {r.text[:80]}")
                    reads.append(("foreign", (await c.get(FOREIGN, headers=anna)).status_code))
                    await asyncio.sleep(0.01)

            async def write() -> None:
                # A client of its own: a registration ends the session of the browser it runs in.
                async with httpx.AsyncClient(base_url=url, timeout=20) as w:
                    await _register_until(w, stop)

            async def _register_until(w: httpx.AsyncClient, stop: asyncio.Event) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    w.cookies.clear()
                    r = await w.post("/auth/register", json={
                        "login": f"eva-{os.getpid()}-{n}@example.at", "identifier": "1000010",
                        "proof_type": "kundenkennwort", "proof": "Mayr-KG-Kennwort",
                        "password": "a-long-portal-password-1",
                    })
                    assert "Traceback" not in r.text
                    writes.append(r.status_code)
                    if r.status_code not in (200, 201, 503):
                        odd.append(r.text)
                    await asyncio.sleep(0.05)

            tasks = [asyncio.create_task(read()) for _ in range(3)] + [asyncio.create_task(write())]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(pg.stop)
            phase[0] = "down"
            await asyncio.sleep(2.0)
            await asyncio.to_thread(pg.start)
            phase[0] = "restarted"
            restarted = len(reads), len(writes)

            def recovered() -> bool:
                own_after = [s for kind, s in reads[restarted[0]:] if kind == "own"]
                return bool(own_after) and own_after[-1] == 200 and writes[-1:] in ([200], [201])

            # Service comes back by itself: wait for a registration and a read to succeed again.
            for _ in range(600):
                if len(writes) > restarted[1] and recovered():
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*tasks)

            own = {s for kind, s in reads if kind == "own"}
            foreign = {s for kind, s in reads if kind == "foreign"}
            assert own <= {200, 503}, (own, odd[:3])
            assert foreign <= {404, 503}, foreign  # never another customer's line
            assert set(writes) <= {200, 201, 503}, (writes, odd)
            assert 503 in writes, "the database was down, yet no registration was refused"
            after = ([s for kind, s in reads[restarted[0]:] if kind == "own"][-20:], writes[restarted[1]:][-20:])
            assert recovered(), f"the gateway did not recover: {after}"
            assert (await c.get(USAGE, headers=anna)).status_code == 200
        # Never half done: every account has its binding; nothing refused was stored.
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres")
        try:
            rows = await conn.fetch("SELECT login, role, bound_customer, bound_msisdn FROM auth_accounts "
                                    "WHERE login LIKE 'eva-%'")
        finally:
            await conn.close()
        assert len(rows) == sum(1 for s in writes if s in (200, 201))
        assert all(r["role"] == "customer" and r["bound_customer"] == "1000010" for r in rows)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(pg.stop)
        shutil.rmtree(work, ignore_errors=True)


async def test_several_hosts_with_target_session_attrs(tmp_path: Path) -> None:
    """`[database] url` names a primary/standby pair: the gateway connects to the one that answers
    as a primary (here the first host is down), for accounts, directory and its revision watch."""
    from tests.operations.test_replicas import postgres_database

    down = free_port()
    async with postgres_database() as single:
        name = single.rsplit("/", 1)[1]
        url = (f"postgresql+asyncpg://postgres@/{name}?host=127.0.0.1:{down}&host=127.0.0.1:5432"
               "&target_session_attrs=read-write")
        async with gateway_on(tmp_path, url) as gw, httpx.AsyncClient(base_url=gw, timeout=20) as c:
            anna = await login_anna(c)
            assert (await c.get(USAGE, headers=anna)).status_code == 200
            assert (await c.get(FOREIGN, headers=anna)).status_code == 404
