"""The signed assertion: captured from what the gateway sent a backend, replayed directly
against the demo backend for another path or method → 401 (htm/htu)."""

from __future__ import annotations

import httpx

from demo.backend import create_app as create_backend
from tests.attacks.conftest import Recorded
from tests.integration.test_roles import login_anna
from tests.servers.gateway import serve_asgi


async def test_captured_assertion_does_not_open_other_paths_or_methods(recorded: Recorded) -> None:
    async with recorded.client() as c:
        h = await login_anna(c)
        r = await c.get("/api/lines/436641000001/usage", headers=h)
        assert r.status_code == 200
    (pairs,) = recorded.recorder.heads()
    assertion = dict((k.lower(), v) for k, v in pairs)["x-portal-assertion"]
    backend = create_backend(jwks_url=f"{recorded.url}/.well-known/jwks.json", audience="portal")
    async with serve_asgi(backend) as url, httpx.AsyncClient(base_url=url) as b:
        hdr = {"X-Portal-Assertion": assertion}
        # Sanity: on its own method and path the assertion is valid (so the refusals below are htm/htu).
        assert (await b.get("/api/lines/436641000001/usage", headers=hdr)).status_code == 200
        for method, path in [("GET", "/api/lines/436641000001/tariff"), ("GET", "/api/lines/436641000001/sim/puk"),
                             ("GET", "/api/lines/436641000020/usage"), ("PUT", "/api/lines/436641000001/tariff"),
                             ("POST", "/api/lines/436641000001/sim/swap"), ("HEAD", "/api/lines/436641000001/usage"),
                             ("GET", "/api/lines/436641000001/usage/"), ("GET", "/API/lines/436641000001/usage"),
                             ("GET", "/api/customers/1000001/profile")]:
            r = await b.request(method, path, headers=hdr, json={} if method in ("PUT", "POST") else None)
            assert r.status_code in (401, 404, 405), (method, path, r.status_code)
            if r.status_code == 404:
                assert "asked_by" not in r.text or r.json().get("asked_by") is None


async def test_public_route_carries_no_assertion(recorded: Recorded) -> None:
    async with recorded.client() as c:
        h = await login_anna(c)
        await c.get("/api/status", headers=h)
    (pairs,) = recorded.recorder.heads()
    assert "x-portal-assertion" not in {k.lower() for k, _ in pairs}


async def test_captured_assertion_cannot_be_replayed_on_the_same_request(recorded: Recorded) -> None:
    async with recorded.client() as c:
        h = await login_anna(c)
        assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200
    (pairs,) = recorded.recorder.heads()
    assertion = dict((k.lower(), v) for k, v in pairs)["x-portal-assertion"]
    backend = create_backend(jwks_url=f"{recorded.url}/.well-known/jwks.json", audience="portal")
    async with serve_asgi(backend) as url, httpx.AsyncClient(base_url=url) as b:
        hdr = {"X-Portal-Assertion": assertion}
        assert (await b.get("/api/lines/436641000001/usage", headers=hdr)).status_code == 200
        # The same method and path (and another query) within the minute: the jti is spent.
        for path in ("/api/lines/436641000001/usage", "/api/lines/436641000001/usage?x=1"):
            r = await b.get(path, headers=hdr)
            assert r.status_code == 401 and "replay" in r.text
