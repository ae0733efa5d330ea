"""The whole gateway (real policy, SQLite directory, auth, memory store) in front of the
real demo backend, both on loopback sockets; SMS codes go to an outbox file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import Settings, load_settings
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

ROOT = Path(__file__).resolve().parents[2]


def totp_now(secret: str, at: float | None = None) -> str:
    key = base64.b32decode(secret)
    counter = int((at if at is not None else time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 15
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6
    return f"{value:06d}"


@dataclass
class Portal:
    url: str
    backend_url: str
    outbox: Path
    decisions: io.StringIO
    data_dir: Path
    #: The operations listener (readiness details, metrics), when the test serves one.
    ops_url: str = ""

    def client(self, **kw: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20, **kw)  # type: ignore[arg-type]

    def ops_client(self) -> httpx.AsyncClient:
        assert self.ops_url, "this portal was started without an operations listener"
        return httpx.AsyncClient(base_url=self.ops_url, timeout=20)

    def last_sms_code(self, msisdn: str) -> str:
        import re

        lines = [json.loads(x) for x in self.outbox.read_text().splitlines() if x.strip()]
        texts = [x["text"] for x in lines if x["to"] == msisdn]
        match = re.search(r"\b(\d{6})\b", texts[-1])
        assert match, texts[-1]
        return match.group(1)


def portal_overrides(tmp_path: Path, gw_port: int, upstream_url: str) -> dict[str, Any]:
    """config/demo.toml on temporary paths: the whole gateway, embedded defaults."""
    return {
        "server.port": gw_port,
        "server.public_url": f"http://127.0.0.1:{gw_port}",
        "server.data_dir": str(tmp_path),
        "database.url": f"sqlite+aiosqlite:///{tmp_path}/portal.db",
        "directory.seed_file": str(ROOT / "demo" / "directory.yaml"),
        "policy.path": str(ROOT / "policies" / "portal.polar"),
        "policy.tests": str(ROOT / "policies" / "tests"),
        "policy.watch": False,
        "policy.decision_log": str(tmp_path / "decisions.jsonl"),
        "routes.path": str(ROOT / "config" / "routes.toml"),
        "sms.outbox_path": str(tmp_path / "sms-outbox.jsonl"),
        "sms.sender": "outbox",
        "upstreams.portal": {"url": upstream_url},
        "server.ops_port": free_port(),
    }


def portal_settings(tmp_path: Path, gw_port: int, upstream_url: str, **extra: Any) -> Settings:
    overrides = {**portal_overrides(tmp_path, gw_port, upstream_url), **extra}
    return load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=overrides)


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Portal]:
    gw_port = free_port()
    backend_port = free_port()
    outbox = tmp_path / "sms-outbox.jsonl"
    settings = portal_settings(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}")
    log = io.StringIO()
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=log, serve_ops=True)
    backend = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal")
    async with serve_asgi(backend, port_override=backend_port) as backend_url:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield Portal(url, backend_url, outbox, log, tmp_path, f"http://127.0.0.1:{settings.server.ops_port}")
