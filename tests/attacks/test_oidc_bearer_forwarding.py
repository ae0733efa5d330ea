"""OIDC bearers at the whole gateway, the real test IdP (tests/idp) and a raw recording
backend (issue 8, points 2 and 4).

* An IdP access token the gateway verified is not forwarded: it is valid on every
  route and every backend of the audience, while the backend's assertion is not.
  A route that opts in (``pass_authorization = true``) relays it, as Envoy's
  ``jwt_authn`` does with ``forward: true``.
* A client id with a trailing newline (``svc\\n``) used to pass ``^…$`` and become
  the subject ``client:svc\\n``, i.e. an ``X-Portal-Subject`` value with a LF in it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from tests.attacks.conftest import Recorder
from tests.attacks.test_forwarded_credentials import TARIFF, USAGE, opted_in_routes
from tests.integration.conftest import portal_settings
from tests.oidc.idp import Idp, start_idp
from tests.oidc.portal import anna_full_login, free_port, idp_login, provider_table
from tests.servers.gateway import serve_asgi


@pytest.fixture(scope="module")
def gw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, gw_port: int) -> Iterator[Idp]:
    provider = start_idp(Path(tmp_path_factory.mktemp("idp")), gateway=f"http://127.0.0.1:{gw_port}")
    yield provider
    provider.stop()


@dataclass
class Gateway:
    url: str
    idp: Idp
    recorder: Recorder

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20, headers={"origin": self.url})


@pytest.fixture
async def gw(tmp_path: Path, idp: Idp, gw_port: int) -> AsyncIterator[Gateway]:
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = portal_settings(
        tmp_path,
        gw_port,
        f"http://127.0.0.1:{port}",
        **{
            "routes.path": str(opted_in_routes(tmp_path)),
            "oidc.enabled": True,
            "oidc.providers": {"customer": provider_table(idp, allow_service_clients=True)},
        },
    )
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    try:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield Gateway(url, idp, recorder)
    finally:
        server.close()
        await server.wait_closed()


async def link_anna(gw: Gateway) -> None:
    """Anna links her IdP login to her portal account from her own full login."""
    async with gw.client() as c:
        await anna_full_login(c)
        r = await idp_login(c, gw.url, "anna", "anna-idp-pass")
        assert r.status_code == 303 and r.headers["location"] == "/auth/oidc/link", r.text
        r = await c.post("/auth/oidc/link", json={"link_to": "account"})
        assert r.status_code == 200, r.text


def authorization_sent(gw: Gateway) -> list[str]:
    return [v for k, v in gw.recorder.heads()[-1] if k.lower() == "authorization"]


async def test_a_verified_access_token_is_not_forwarded(gw: Gateway) -> None:
    await link_anna(gw)
    token = gw.idp.mint({"sub": "anna", "scope": "openid"})
    before = len(gw.recorder.requests)
    async with gw.client() as c:
        r = await c.get(USAGE, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text  # verified, linked, allowed: it reached the backend
    assert len(gw.recorder.requests) == before + 1
    assert token.encode() not in gw.recorder.requests[-1]
    assert authorization_sent(gw) == []


async def test_an_opted_in_route_relays_the_access_token(gw: Gateway) -> None:
    await link_anna(gw)
    token = gw.idp.mint({"sub": "anna", "scope": "openid"})
    async with gw.client() as c:
        r = await c.get(TARIFF, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert authorization_sent(gw) == [f"Bearer {token}"]


async def test_client_id_with_trailing_newline_is_refused(gw: Gateway) -> None:
    async with gw.client() as c:
        # The same token without the LF is a valid service client (the policy then
        # grants it nothing: 404), so the 401 below is the pattern's doing.
        plain = gw.idp.mint({"sub": "svc", "client_id": "svc", "scope": "portal:read"})
        r = await c.get(USAGE, headers={"Authorization": f"Bearer {plain}"})
        assert r.status_code == 404, r.text
        forged = gw.idp.mint({"sub": "svc\n", "client_id": "svc\n", "scope": "portal:read"})
        r = await c.get(USAGE, headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401, r.text
        assert r.json()["reason"] == "oidc_token_claims"
        scoped = gw.idp.mint({"sub": "svc", "client_id": "svc", "scope": "portal:read\n"})
        r = await c.get(USAGE, headers={"Authorization": f"Bearer {scoped}"})
        assert r.status_code == 401 and r.json()["reason"] == "oidc_token_claims", r.text
    assert not gw.recorder.requests
