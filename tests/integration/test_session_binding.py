"""`[signing] binding = "session"` end to end: a real gateway reuses one assertion per
(session, upstream), without per-request claims; a new session gets its own; the backend
verifies it with the gateway's JWKS; the default stays per-request."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from tests.integration.conftest import portal_settings
from tests.integration.test_roles import login_anna
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

USAGE = "/api/lines/436641000001/usage"


class Capture:
    """A backend that records the assertion of every request and answers 200."""

    def __init__(self) -> None:
        self.assertions: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        self.assertions.append(headers.get(b"x-portal-assertion", b"").decode())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})


@asynccontextmanager
async def gateway(tmp_path: Path, binding: str) -> AsyncIterator[tuple[str, Capture]]:
    gw_port, be_port = free_port(), free_port()
    capture = Capture()
    settings = portal_settings(tmp_path, gw_port, f"http://127.0.0.1:{be_port}", **{"signing.binding": binding})
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    async with serve_asgi(capture, port_override=be_port), serve_asgi(app, port_override=gw_port) as url:
        yield url, capture


async def _claims(c: httpx.AsyncClient, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(json.loads((await c.get("/.well-known/jwks.json")).text))
    return dict(jwt.decode(token, keys, algorithms=["EdDSA", "ES256"]).claims)


async def test_session_binding_reuses_one_assertion_per_session(tmp_path: Path) -> None:
    async with gateway(tmp_path, "session") as (url, capture), httpx.AsyncClient(base_url=url, timeout=20) as c:
        anna = await login_anna(c)
        for _ in range(3):
            assert (await c.get(USAGE, headers=anna)).status_code == 200
        first, second, third = capture.assertions[-3:]
        assert first == second == third, "one assertion per (session, upstream) within its reuse window"
        claims = await _claims(c, first)
        assert claims["aud"] == "portal" and claims["acl"] == "full"
        assert not {"htm", "htu", "jti", "rid"} & set(claims), claims
        # Logout ends the session: the reused assertion is never sent again.
        assert (await c.post("/auth/logout", headers=anna)).status_code in (200, 204)
        sent = len(capture.assertions)
        assert (await c.get(USAGE, headers=anna)).status_code == 401
        assert len(capture.assertions) == sent


async def test_request_binding_stays_the_default(tmp_path: Path) -> None:
    async with gateway(tmp_path, "request") as (url, capture), httpx.AsyncClient(base_url=url, timeout=20) as c:
        anna = await login_anna(c)
        for _ in range(2):
            assert (await c.get(USAGE, headers=anna)).status_code == 200
        a, b = capture.assertions[-2:]
        assert a != b
        claims = await _claims(c, a)
        assert claims["htm"] == "GET" and claims["htu"] == USAGE and claims["jti"]
