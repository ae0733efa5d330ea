"""A line changes its customer while traffic runs through a real gateway (SQLite and PostgreSQL).

Anna asks for her line's usage in a loop from several clients. Then the line is moved to
Installateur Mayr KG, by an SQL UPDATE or by ``portal-gateway directory import --replace``
(a subprocess, as an operator runs it). What must hold, and what each assertion shows:

- no request sent later than the staleness bound (2 x ``revision_poll_seconds``) after
  the write became visible is decided on the old fact (answered 200);
- once one request was decided on the new fact (404), no request sent after that answer
  is decided on the old one: the cache never goes back;
- the traffic was served from memory (cache hits), so the test exercised the cache.

No timing assertion: the bound is enforced by the cache itself (an entry is served only
while a revision check started within the bound), so it holds on a loaded machine too;
how fast the change was seen is printed.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import load_settings
from tests.integration.conftest import ROOT, portal_overrides, totp_now
from tests.operations.test_replicas import postgres_database
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

ANNA_LINE = "436641000001"
ANNA_TOTP = "JBSWY3DPEHPK3PXP"
POLL = 0.5
BOUND = 2 * POLL


@dataclass
class Gateway:
    url: str
    database_url: str
    registry: CollectorRegistry


@asynccontextmanager
async def gateway(tmp_path: Path, backend: str) -> AsyncIterator[Gateway]:
    async with contextlib_database(tmp_path, backend) as database_url:
        gw_port, backend_port = free_port(), free_port()
        overrides = portal_overrides(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}")
        overrides.update({"database.url": database_url, "directory.revision_poll_seconds": POLL,
                          "policy.decision_log": "off"})
        settings = load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=overrides)
        registry = CollectorRegistry()
        app = build_app(settings, registry=registry, access_log_stream=io.StringIO())
        upstream = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal")
        async with serve_asgi(upstream, port_override=backend_port), serve_asgi(app, port_override=gw_port) as url:
            yield Gateway(url, database_url, registry)


@asynccontextmanager
async def contextlib_database(tmp_path: Path, backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/portal.db"
    else:
        async with postgres_database() as url:
            yield url


async def login_anna(c: httpx.AsyncClient) -> dict[str, str]:
    r = await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "anna-portal-2025"})
    assert r.status_code == 200, r.text
    pending = {"Authorization": "Bearer " + r.json()["token"]}
    r = await c.post("/auth/login/totp", json={"code": totp_now(ANNA_TOTP)}, headers=pending)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


async def move_line_by_sql(gw: Gateway, tmp_path: Path) -> None:
    sql = ("UPDATE dir_lines SET contract_id = 'ct-1000010', customer_number = '1000010' "
           f"WHERE msisdn = '{ANNA_LINE}'")
    if gw.database_url.startswith("sqlite"):
        import sqlite3

        def update() -> None:
            conn = sqlite3.connect(gw.database_url.split("///", 1)[1], timeout=10)
            with conn:
                conn.execute(sql)
            conn.close()

        await asyncio.to_thread(update)
    else:
        conn = await asyncpg.connect(gw.database_url.replace("+asyncpg", ""))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


async def move_line_by_import(gw: Gateway, tmp_path: Path) -> None:
    world = (ROOT / "demo" / "directory.yaml").read_text()
    old = f'{{msisdn: "{ANNA_LINE}", contract: ct-1000001, customer: "1000001"'
    assert old in world
    moved = tmp_path / "moved.yaml"
    moved.write_text(world.replace(old, f'{{msisdn: "{ANNA_LINE}", contract: ct-1000010, customer: "1000010"'))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "directory", "import", str(moved), "--replace",
        "--database-url", gw.database_url,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PORTAL_GATEWAY_CONFIG": ""},
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)


@pytest.mark.parametrize("how", ["sql", "import"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_no_request_is_decided_on_the_old_fact(tmp_path: Path, backend: str, how: str) -> None:
    # (sent, answered, status) of every request, in monotonic time (the gateway's clock too).
    answers: list[tuple[float, float, int]] = []
    async with gateway(tmp_path, backend) as gw, httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
        headers = await login_anna(c)
        stop = asyncio.Event()

        async def traffic() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=headers)
                answers.append((sent, time.monotonic(), r.status_code))

        clients = [asyncio.create_task(traffic()) for _ in range(4)]
        try:
            while sum(1 for *_, s in answers if s == 200) < 40:
                await asyncio.sleep(0.01)
            await (move_line_by_sql if how == "sql" else move_line_by_import)(gw, tmp_path)
            visible = time.monotonic()  # the write committed before this
            while sum(1 for sent, _, _ in answers if sent > visible + BOUND) < 40:
                await asyncio.sleep(0.01)
        finally:
            stop.set()
            await asyncio.gather(*clients)
        hits = gw.registry.get_sample_value("portal_gateway_directory_cache_hits_total") or 0
        listening = gw.registry.get_sample_value("portal_gateway_directory_cache_listening")

    statuses = {s for *_, s in answers}
    assert statuses <= {200, 404}, statuses
    before = [s for sent, _, s in answers if sent < visible]
    assert before.count(200) >= 40
    late = [(sent, s) for sent, _, s in answers if sent > visible + BOUND]
    assert late and all(s == 404 for _, s in late), "decided on the old fact after the bound"
    first_new = min(answered for _, answered, s in answers if s == 404)
    assert all(s == 404 for sent, _, s in answers if sent > first_new), "went back to the old fact"
    assert hits > 0
    old_after = [sent for sent, _, s in answers if sent >= visible and s == 200]
    last_old = f"{(max(old_after) - visible) * 1000:.0f} ms" if old_after else "none"
    print(f"\n{backend}/{how} (listening={listening}): {len(answers)} requests, {hits:.0f} cache hits; "
          f"{len(old_after)} requests sent after the write returned were answered on the old fact, the last "
          f"sent {last_old} after it (bound {BOUND:g} s; the request's own latency included)")
