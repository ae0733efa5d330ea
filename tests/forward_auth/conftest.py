"""Real nginx and real Caddy, configured from deploy/nginx/forward-auth.conf and deploy/caddy/Caddyfile
as shipped, in front of the real demo backend, asking the real gateway (forward-auth enabled) for every decision.

One world per module: starting nginx, Caddy, the gateway and the backend costs seconds, and
a TOTP code is accepted once, so each person logs in once. Under CI=true a missing nginx or
Caddy is a failure, elsewhere a skip.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Receive, Scope, Send

from demo.backend import create_app as create_backend
from gateway.app import build_app
from tests.integration.conftest import portal_settings, totp_now
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "forward-auth.conf"
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
ANNA_TOTP = "JBSWY3DPEHPK3PXP"


def edge_binary(name: str, fallback: str) -> str:
    found = shutil.which(name) or (fallback if Path(fallback).exists() else None)
    if found is None:
        message = f"{name} is not installed (Debian package {'nginx-light' if name == 'nginx' else name})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class Seen:
    """One request as the backend received it."""

    method: str
    target: bytes
    headers: list[tuple[str, str]]

    def header(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]


class Recorder:
    """Wraps the demo backend and remembers every request that reached it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = scope.get("raw_path") or scope["path"].encode()
            if scope.get("query_string"):
                target += b"?" + scope["query_string"]
            headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]
            self.seen.append(Seen(scope["method"], target, headers))
        await self.app(scope, receive, send)


@dataclass
class World:
    gateway: str
    backend: str
    nginx: str
    caddy: str
    recorder: Recorder
    registry: CollectorRegistry
    access_log: io.StringIO
    decisions: Path
    outbox: Path
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)

    def client(self, base: str, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=20, **kw)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the shipped edge config no longer contains {old!r}: update the test harness"
    return text.replace(old, new)


def _addresses(text: str, listen: int, gateway: int, backend: int) -> str:
    text = _replace(text, "127.0.0.1:8080", f"127.0.0.1:{gateway}")
    text = _replace(text, "127.0.0.1:8081", f"127.0.0.1:{backend}")
    return _replace(text, "127.0.0.1:8000", f"127.0.0.1:{listen}")


def nginx_conf(work: Path, listen: int, gateway: int, backend: int) -> str:
    text = _addresses(NGINX_CONF.read_text(), listen, gateway, backend)
    # Everything nginx writes lives in the test's directory.
    temp = "".join(
        f"    {kind}_temp_path {work}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = _replace(text, "http {\n", "http {\n    access_log off;\n" + temp)
    head = f"pid {work}/nginx.pid;\nerror_log {work}/error.log info;\n"
    if os.geteuid() == 0:
        head += "user root;\n"  # workers must reach the test's directory
    return head + text


async def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(1000):
        if proc.poll() is not None:
            raise RuntimeError(f"edge proxy exited: {log.read_text() if log.exists() else ''}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("edge proxy did not start listening")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def _login_anna(c: httpx.AsyncClient) -> tuple[str, str]:
    r = await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "anna-portal-2025"})
    assert r.status_code == 200, r.text
    pending = {"Authorization": "Bearer " + r.json()["token"]}
    r = await c.post("/auth/login/totp", json={"code": totp_now(ANNA_TOTP)}, headers=pending)
    assert r.status_code == 200, r.text
    return r.json()["token"], c.cookies["pg_session"]


async def _register(c: httpx.AsyncClient, login: str, identifier: str, proof_type: str, proof: str) -> str:
    r = await c.post(
        "/auth/register",
        json={"login": login, "identifier": identifier, "proof_type": proof_type, "proof": proof,
              "password": "ein-langes-Passwort-2026"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


async def _sms_login(c: httpx.AsyncClient, outbox: Path, msisdn: str) -> str:
    import json
    import re

    r = await c.post("/auth/sms/send", json={"msisdn": msisdn})
    assert r.status_code in (200, 202), r.text
    texts = [json.loads(x)["text"] for x in outbox.read_text().splitlines() if x.strip()]
    match = re.search(r"\b(\d{6})\b", texts[-1])
    assert match
    r = await c.post("/auth/sms/verify", json={"msisdn": msisdn, "code": match.group(1)})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def edge_binaries() -> Iterator[tuple[str, str]]:
    yield edge_binary("nginx", "/usr/sbin/nginx"), edge_binary("caddy", "/usr/bin/caddy")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, edge_binaries: tuple[str, str]) -> AsyncIterator[World]:
    nginx_bin, caddy_bin = edge_binaries
    work = tmp_path_factory.mktemp("edge")
    gw_port, backend_port, nginx_port, caddy_port = free_port(), free_port(), free_port(), free_port()
    settings = portal_settings(
        work, gw_port, f"http://127.0.0.1:{backend_port}",
        **{"forward_auth.enabled": True, "forward_auth.trusted_peers": ["127.0.0.1/32"]},
    )
    registry = CollectorRegistry()
    access_log = io.StringIO()
    app = build_app(settings, registry=registry, access_log_stream=access_log)
    recorder = Recorder(
        create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal")
    )
    (work / "nginx.conf").write_text(nginx_conf(work, nginx_port, gw_port, backend_port))
    (work / "Caddyfile").write_text(
        _addresses(CADDYFILE.read_text(), caddy_port, gw_port, backend_port)
    )
    env = {**os.environ, "HOME": str(work), "XDG_DATA_HOME": str(work), "XDG_CONFIG_HOME": str(work)}
    async with serve_asgi(recorder, port_override=backend_port) as backend_url:
        async with serve_asgi(app, port_override=gw_port) as gateway_url:
            nginx = subprocess.Popen(
                [nginx_bin, "-p", str(work), "-e", str(work / "error.log"), "-c", str(work / "nginx.conf"),
                 "-g", "daemon off;"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            caddy_log = work / "caddy.log"
            with caddy_log.open("wb") as out:
                caddy = subprocess.Popen(
                    [caddy_bin, "run", "--config", str(work / "Caddyfile"), "--adapter", "caddyfile"],
                    stdout=out, stderr=subprocess.STDOUT, env=env,
                )
            try:
                await _wait_port(nginx_port, nginx, work / "error.log")
                await _wait_port(caddy_port, caddy, caddy_log)
                w = World(
                    gateway=gateway_url, backend=backend_url, nginx=f"http://127.0.0.1:{nginx_port}",
                    caddy=f"http://127.0.0.1:{caddy_port}", recorder=recorder, registry=registry,
                    access_log=access_log, decisions=work / "decisions.jsonl", outbox=work / "sms-outbox.jsonl",
                )
                async with w.client(gateway_url) as c:
                    token, cookie = await _login_anna(c)
                    w.credentials["anna"] = {"Authorization": f"Bearer {token}"}
                    w.cookies["anna"] = cookie
                async with w.client(gateway_url) as c:
                    token = await _register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
                    w.credentials["markus"] = {"Authorization": f"Bearer {token}"}
                async with w.client(gateway_url) as c:
                    token = await _sms_login(c, w.outbox, "436641000040")
                    w.credentials["lukas"] = {"Authorization": f"Bearer {token}"}
                w.credentials["anonymous"] = {}
                yield w
            finally:
                _stop(nginx)
                _stop(caddy)
