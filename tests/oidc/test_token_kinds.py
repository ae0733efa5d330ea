"""Only access tokens open /api: a real ID token of the test IdP, or a logout token signed
with its key, is refused as a bearer token — even when the gateway's audience is set to
the client id, which is exactly what ID tokens carry (the gateway warns about that at start)."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .idp import RESOURCE, Idp, start_idp
from .portal import OidcPortal, free_port, idp_login, idp_tokens, oidc_portal, provider_table

USAGE = "/api/lines/436641000010/usage"


@pytest.fixture(scope="module")
def gw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, gw_port: int) -> Iterator[Idp]:
    provider = start_idp(Path(tmp_path_factory.mktemp("idp")), gateway=f"http://127.0.0.1:{gw_port}")
    yield provider
    provider.stop()


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    body: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return body


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    body: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return body


async def link_markus(gw: OidcPortal) -> None:
    async with gw.client() as c:
        r = await idp_login(c, gw.url, "markus", "markus-idp-pass")
        assert r.headers["location"] == "/auth/oidc/link"
        r = await c.post(
            "/auth/oidc/link",
            json={"identifier": "1000010", "proof_type": "kundenkennwort", "proof": "Mayr-KG-Kennwort"},
        )
        assert r.status_code == 200, r.text


async def api(gw: OidcPortal, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as c:
        return await c.get(USAGE, headers={"authorization": f"Bearer {token}"})


async def test_real_id_token_is_not_an_access_token(
    tmp_path: Path, idp: Idp, gw_port: int
) -> None:
    async with oidc_portal(tmp_path, idp, gw_port) as gw:
        await link_markus(gw)
        tokens = await idp_tokens(idp, gw.url, "markus", "markus-idp-pass")
        access, id_token = tokens["access_token"], tokens["id_token"]
        assert header_of(access)["typ"] == "at+jwt"
        assert "nonce" not in claims_of(id_token) and claims_of(id_token)["aud"] == "portal-web"

        ok = await api(gw, access)
        assert ok.status_code == 200, ok.text  # the real access token of the linked subject
        refused = await api(gw, id_token)
        assert refused.status_code == 401
        assert refused.json()["reason"] in ("oidc_token_audience", "oidc_token_type")


async def test_id_token_refused_even_when_audience_is_the_client_id(
    tmp_path: Path, idp: Idp, gw_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.auth.oidc")
    table = provider_table(idp, audience="portal-web")
    async with oidc_portal(tmp_path, idp, gw_port, providers={"customer": table}) as gw:
        assert any(
            "audience equals its client_id" in r.getMessage() for r in caplog.records
        ), "no warning at start"
        await link_markus(gw)
        tokens = await idp_tokens(idp, gw.url, "markus", "markus-idp-pass", resource=None)
        id_token = tokens["id_token"]
        assert claims_of(id_token)["aud"] == "portal-web" and "nonce" not in claims_of(id_token)
        refused = await api(gw, id_token)
        assert refused.status_code == 401, refused.text
        assert refused.json()["reason"] == "oidc_token_type"

        # A logout token, signed with the provider's real key: refused by its type ...
        now = int(time.time())
        logout = {
            "sub": "markus",
            "aud": "portal-web",
            "jti": "j-1",
            "iat": now,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }
        r = await api(gw, idp.mint(logout, header={"typ": "logout+jwt"}))
        assert r.status_code == 401 and r.json()["reason"] == "oidc_token_type"
        # ... and by its claims when it carries no type at all.
        r = await api(gw, idp.mint(logout, header={"typ": None}))
        assert r.status_code == 401 and r.json()["reason"] == "oidc_token_type"


async def test_provider_that_types_its_access_tokens_needs_at_jwt(
    tmp_path: Path, idp: Idp, gw_port: int
) -> None:
    table = provider_table(idp, require_at_jwt=True)
    async with oidc_portal(tmp_path, idp, gw_port, providers={"customer": table}) as gw:
        await link_markus(gw)
        untyped = idp.mint({"sub": "markus", "scope": "openid"}, header={"typ": "JWT"})
        r = await api(gw, untyped)
        assert r.status_code == 401 and r.json()["reason"] == "oidc_token_type"
        r = await api(gw, idp.mint({"sub": "markus"}, header={"typ": "at+jwt"}))
        assert r.status_code != 401, r.text
        assert RESOURCE == claims_of(untyped)["aud"]
