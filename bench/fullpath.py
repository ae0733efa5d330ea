"""The gateway under test on its full path: configuration, stores, start, login, probe.

A `Deployment` is one way to run the gateway: the embedded default (memory store, a SQLite
file) or Redis + PostgreSQL. Redis gets a dedicated database number and a key prefix of
its own, PostgreSQL a database the bench creates (``bench_<random>``, in the shared
server's ``test`` cluster); both are removed when the deployment closes, whatever happened.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.population import Caller, Person, seed_database
from gateway.database import Database

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The bench's own Redis database number (tests use others); keys carry a per-run prefix too.
REDIS_DB = 9
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


@dataclass
class Deployment:
    """Where the gateway keeps its state; `open()` prepares it, `close()` removes what it made."""

    name: str
    shared: bool  # Redis + PostgreSQL (True) or memory + SQLite (False)
    work: Path
    totp_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    key_prefix: str = field(default_factory=lambda: f"bench-{secrets.token_hex(4)}:")
    pg_database: str = field(default_factory=lambda: f"bench_{secrets.token_hex(4)}")
    _created_pg: bool = False

    @property
    def database_url(self) -> str:
        if self.shared:
            return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.pg_database}"
        return f"sqlite+aiosqlite:///{self.work}/{self.name}.db"

    def store_toml(self) -> str:
        if not self.shared:
            return '[store]\nbackend = "memory"\n'
        return (f'[store]\nbackend = "redis"\nurl = "redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"\n'
                f'key_prefix = "{self.key_prefix}"\n')

    async def open(self, crowd: list[Person]) -> None:
        """Create the database (PostgreSQL) and seed directory and accounts."""
        if self.shared:
            import asyncpg  # type: ignore[import-untyped]

            conn = await asyncpg.connect(POSTGRES_ADMIN)
            try:
                await conn.execute(f'CREATE DATABASE "{self.pg_database}"')
                self._created_pg = True
            finally:
                await conn.close()
        db = Database(self.database_url)
        try:
            await seed_database(db, crowd, totp_key=self.totp_key)
        finally:
            await db.close()

    async def close(self) -> None:
        if not self.shared:
            return
        import redis.asyncio as aioredis

        r = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
        try:
            batch = [key async for key in r.scan_iter(match=self.key_prefix + "*", count=1000)]
            for i in range(0, len(batch), 1000):
                await r.delete(*batch[i : i + 1000])
        finally:
            await r.aclose()
        if self._created_pg:
            import asyncpg

            conn = await asyncpg.connect(POSTGRES_ADMIN)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')
            finally:
                await conn.close()


#: Where the assertion binding setting may live: ``[signing] binding`` (the gateway's
#: documented key) or ``[assertion] binding`` (the name issue 10 used).
BINDING_SECTIONS = ("signing", "assertion")


def gateway_config(
    dep: Deployment, port: int, upstream_port: int, *, binding: str | None = None, section: str = "signing"
) -> Path:
    """The bench gateway's TOML: the shipped policy and routes, no seed file (the bench seeds)."""
    from bench.population import ARGON2

    data_dir = dep.work / f"{dep.name}-var"
    data_dir.mkdir(exist_ok=True)
    assertion = f'\n[{section}]\nbinding = "{binding}"\n' if binding else ""
    cfg = dep.work / f"{dep.name}{'-' + binding if binding else ''}.toml"
    cfg.write_text(f"""
[server]
port = {port}
public_url = "http://127.0.0.1:{port}"
data_dir = "{data_dir}"
access_log = false
cookie_secure = true
# No operations listener: its fixed port would clash between workers and concurrent runs.
ops_port = 0

{dep.store_toml()}
[database]
url = "{dep.database_url}"

[policy]
path = "{ROOT}/policies/portal.polar"
tests = "{ROOT}/policies/tests"
watch = false
decision_log = "off"

[routes]
path = "{ROOT}/config/routes.toml"

[auth]
argon2_time_cost = {ARGON2["time_cost"]}
argon2_memory_kib = {ARGON2["memory_kib"]}
argon2_parallelism = {ARGON2["parallelism"]}

[totp]
encryption_key = "{dep.totp_key}"

[upstreams.portal]
url = "http://127.0.0.1:{upstream_port}"
{assertion}""")
    return cfg


def binding_section(work: Path, upstream_port: int) -> tuple[str | None, str]:
    """The section in which this gateway takes ``binding = "session"``, or None and why not."""
    from gateway.settings import SettingsError, load_settings

    problems: list[str] = []
    for section in BINDING_SECTIONS:
        cfg = gateway_config(Deployment(f"probe-{section}", shared=False, work=work), 8080, upstream_port,
                             binding="session", section=section)
        try:
            load_settings(cfg, environ={})
        except SettingsError as exc:
            problems.append(str(exc).split(": ", 1)[-1])
            continue
        return section, ""
    return None, "; ".join(problems)


def _claims(assertion: str) -> dict[str, object]:
    payload = assertion.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


async def probe(base_url: str, caller: Caller) -> str:
    """Two full-path requests through to the upstream's echo; how the assertion is bound.

    Raises RuntimeError when the request is not allowed and forwarded with an assertion
    (a misconfigured bench would otherwise measure a fast 401 or 404).
    """
    seen: list[dict[str, object]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for _ in range(2):
            r = await client.get(caller.path + "?bench-echo", headers={"authorization": f"Bearer {caller.token}"})
            if r.status_code != 200 or not r.json().get("assertion"):
                raise RuntimeError(f"full path probe: HTTP {r.status_code} {r.text[:200]}")
            seen.append(_claims(r.json()["assertion"]))
    return binding_of(seen[0], seen[1])


def binding_of(first: dict[str, object], second: dict[str, object]) -> str:
    """"session" when two consecutive assertions are one reused assertion, else "request"."""
    if "htm" in first or "htu" in first or first != second:
        return "request"
    return "session"

