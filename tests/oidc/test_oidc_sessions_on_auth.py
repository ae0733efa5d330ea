"""OIDC sessions on auth's own endpoints, against the whole gateway and the real test IdP:
their end is enforced on /auth as on /api, ``expires_at`` tells the truth, /auth/logout
also ends the IdP session, the provider tokens are encrypted in the (Redis) store, and the
login page has one working button per provider."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis

from .gateway_app import forms_of
from .helpers import Clock
from .idp import Idp, start_idp
from .portal import OidcPortal, free_port, idp_login, oidc_portal, provider_table

KENNWORT = {"identifier": "1000010", "proof_type": "kundenkennwort", "proof": "Mayr-KG-Kennwort"}
USAGE = "/api/lines/436641000010/usage"
AT_TTL = 300


@pytest.fixture(scope="module")
def gw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, gw_port: int) -> Iterator[Idp]:
    provider = start_idp(
        Path(tmp_path_factory.mktemp("idp")), gateway=f"http://127.0.0.1:{gw_port}", at_ttl=AT_TTL
    )
    yield provider
    provider.stop()


async def linked_session(gw: OidcPortal, c: httpx.AsyncClient, who: str = "markus") -> None:
    r = await idp_login(c, gw.url, who, f"{who}-idp-pass")
    if r.headers["location"] == "/auth/oidc/link":
        r = await c.post("/auth/oidc/link", json=KENNWORT)
        assert r.status_code == 200, r.text


async def test_session_end_is_enforced_on_auth_as_on_api(
    tmp_path: Path, idp: Idp, gw_port: int
) -> None:
    clock = Clock()
    table = provider_table(idp, use_refresh_tokens=False)
    async with oidc_portal(tmp_path, idp, gw_port, providers={"customer": table}, clock=clock) as gw:
        async with gw.client() as first, gw.client() as second:
            start = await first.get("/auth/oidc/login")
            assert "offline_access" not in parse_qs(urlsplit(start.headers["location"]).query)["scope"][0]
            await linked_session(gw, first)
            await linked_session(gw, second)
            me = await first.get("/auth/me")
            assert me.status_code == 200, me.text
            # The truth: the provider's grant (no refresh token), not the 30-minute idle limit.
            expires_at = me.json()["expires_at"]
            assert time.time() + AT_TTL - 30 < expires_at <= time.time() + AT_TTL + 1
            assert (await second.get(USAGE)).status_code == 200

            clock.offset = AT_TTL + 1
            r = await first.get("/auth/me")
            assert r.status_code == 401 and r.json()["reason"] == "oidc_session_expired", r.text
            r = await second.get(USAGE)
            assert r.status_code == 401 and r.json()["reason"] == "oidc_session_expired", r.text
            assert (await first.get(USAGE)).status_code == 401
            assert (await second.get("/auth/me")).status_code == 401


async def test_offline_access_is_asked_with_refresh_tokens(
    tmp_path: Path, idp: Idp, gw_port: int
) -> None:
    async with oidc_portal(tmp_path, idp, gw_port) as gw, gw.client() as c:
        start = await c.get("/auth/oidc/login")
        assert start.status_code == 302
        scope = parse_qs(urlsplit(start.headers["location"]).query)["scope"][0].split()
        assert "offline_access" in scope and "openid" in scope


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"t-oidc-{secrets.token_hex(6)}:"
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_logout_ends_the_idp_session_and_tokens_are_sealed_at_rest(
    tmp_path: Path,
    idp: Idp,
    gw_port: int,
    redis_prefix: tuple[aioredis.Redis, str],
) -> None:
    redis, prefix = redis_prefix
    async with oidc_portal(
        tmp_path,
        idp,
        gw_port,
        settings_overrides={
            "store.backend": "redis",
            "store.url": "redis://127.0.0.1:6379/0",
            "store.key_prefix": prefix,
        },
    ) as gw:
        async with gw.client() as c:
            await linked_session(gw, c)
            assert (await c.get("/auth/me")).status_code == 200
            values = [await redis.get(k) async for k in redis.scan_iter(match=prefix + "*")]
            raw = b"\n".join(v for v in values if isinstance(v, bytes))
            assert b'"refresh_token": "v1:' in raw and b'"id_token": "v1:' in raw
            # No JWT (base64url header "eyJ…" "." payload ".") and no token field in clear anywhere
            # in the store (a bare "eyJ" can occur by chance inside the sealed values).
            assert not re.search(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", raw)
            assert not re.search(rb'"(refresh_token|id_token)": "(?!v1:)', raw)

            r = await c.post("/auth/logout", json={})
            assert r.status_code == 200, r.text
            url = r.json()["logout_url"]
            assert url.startswith(f"{idp.issuer}/session/end?") and "id_token_hint=" in url
            assert (await c.get("/auth/me")).status_code == 401
            page = await c.get(url)
            form = forms_of(page.text)[0]
            done = await c.post(
                urljoin(str(page.url), form["action"]), data={**form["fields"], "logout": "yes"}
            )
            assert done.status_code in (302, 303)
            # The IdP session is gone: a new login asks for the password again.
            start = await c.get("/auth/oidc/login")
            page = await c.get(start.headers["location"])
            while page.status_code in (302, 303):
                target = urljoin(str(page.url), page.headers["location"])
                assert not target.startswith(f"{gw.url}/auth/oidc/callback"), "IdP session survived"
                page = await c.get(target)
            assert forms_of(page.text)[0]["fields"].get("prompt") == "login"


async def test_html_logout_sends_the_browser_to_the_provider(
    tmp_path: Path, idp: Idp, gw_port: int
) -> None:
    async with oidc_portal(tmp_path, idp, gw_port) as gw, gw.client() as c:
        await linked_session(gw, c)
        account = await c.get("/auth/account", headers={"accept": "text/html"})
        assert account.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', account.text)
        assert csrf
        r = await c.post("/auth/logout", data={"csrf_token": csrf.group(1)})
        assert r.status_code == 200, r.text
        link = re.search(r'id="provider-logout"[^>]*href="([^"]+)"', r.text)
        assert link and link.group(1).replace("&amp;", "&").startswith(f"{idp.issuer}/session/end?")
        assert (await c.get("/auth/me")).status_code == 401


async def test_one_working_button_per_provider_and_default_next_exists(
    tmp_path: Path, idp: Idp, gw_port: int
) -> None:
    providers = {
        "customer": provider_table(idp, display_name="Kunden-IdP"),
        "company": provider_table(idp, display_name="Firmen-SSO"),
    }
    async with oidc_portal(tmp_path, idp, gw_port, providers=providers) as gw, gw.client() as c:
        page = await c.get("/auth/login", headers={"accept": "text/html"})
        buttons = re.findall(r'data-provider="([^"]+)" href="([^"]+)"', page.text)
        assert sorted(name for name, _ in buttons) == ["company", "customer"], page.text
        assert "Kunden-IdP" in page.text and "Firmen-SSO" in page.text
        for _, href in buttons:
            r = await c.get(href.replace("&amp;", "&"))
            assert r.status_code == 302, r.text  # not 400 oidc_unknown_provider
            assert r.headers["location"].startswith(f"{idp.issuer}/auth?")
        # The second button's flow goes all the way; without next, the default page exists.
        company = dict(buttons)["company"].replace("&amp;", "&").split("&next=")[0]
        r = await idp_login(c, gw.url, "markus", "markus-idp-pass", start=company)
        assert r.headers["location"] == "/auth/oidc/link"
        r = await c.post("/auth/oidc/link", json=KENNWORT)
        assert r.status_code == 200, r.text
        nxt = r.json()["next"]
        assert nxt == "/auth/account"
        landed = await c.get(nxt, headers={"accept": "text/html"})
        assert landed.status_code == 200 and 'id="who"' in landed.text
