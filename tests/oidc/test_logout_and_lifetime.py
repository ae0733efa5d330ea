"""Back-channel logout, RP-initiated logout, refresh rotation and the provider-bounded lifetime."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import httpx
import pytest

from gateway.auth.oidc.backchannel import LOGOUT_EVENT

from .gateway_app import TestGateway, browser_login, build_gateway, forms_of
from .helpers import ANNA, browser_client
from .idp import Idp


@pytest.fixture
async def gw(web_idp: Idp, gateway_url: str) -> AsyncIterator[TestGateway]:
    gateway = build_gateway(web_idp, gateway_url)
    gateway.accounts.links[(web_idp.issuer, "anna")] = ANNA
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with browser_client() as client:
        yield client


async def logged_in(browser: httpx.AsyncClient, gw: TestGateway) -> None:
    r = await browser_login(browser, gw.url, "anna", "anna-idp-pass")
    assert r.status_code == 303
    assert (await browser.get(f"{gw.url}/whoami")).status_code == 200


async def sign_out_at_provider(browser: httpx.AsyncClient, idp: Idp) -> None:
    page = await browser.get(f"{idp.issuer}/session/end")
    assert page.status_code == 200
    form = forms_of(page.text)[0]
    r = await browser.post(
        urljoin(str(page.url), form["action"]), data={**form["fields"], "logout": "yes"}
    )
    assert r.status_code in (200, 302, 303), r.text


def logout_token(idp: Idp, **claims: object) -> str:
    now = int(time.time())
    body: dict[str, object] = {
        "iss": idp.issuer,
        "aud": "portal-web",
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": "anna",
        "events": {LOGOUT_EVENT: {}},
        **claims,
    }
    return idp.mint({k: v for k, v in body.items() if v is not None}, header={"typ": "logout+jwt"})


async def test_back_channel_logout_ends_a_live_session(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    await logged_in(browser, gw)
    # A second, independent login of the same person in another browser.
    async with browser_client() as other:
        await logged_in(other, gw)
        # The person signs out at the provider in the first browser: the provider
        # sends its logout token to /auth/oidc/backchannel-logout (with that sid).
        await sign_out_at_provider(browser, web_idp)
        r = await browser.get(f"{gw.url}/whoami")
        assert r.status_code == 401
        # The other browser's provider session (another sid) is untouched.
        assert (await other.get(f"{gw.url}/whoami")).status_code == 200
        # A logout token naming only the subject ends every session of it.
        r = await other.post(
            f"{gw.url}/auth/oidc/backchannel-logout", data={"logout_token": logout_token(web_idp)}
        )
        assert r.status_code == 200
        assert (await other.get(f"{gw.url}/whoami")).status_code == 401


@pytest.mark.parametrize(
    ("claims", "header"),
    [
        ({"events": None}, {}),
        ({"events": {"http://example.com/other": {}}}, {}),
        ({"nonce": "n"}, {}),
        ({"sub": None}, {}),  # neither sub nor sid
        ({"aud": "someone-else"}, {}),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, {}),
        ({"jti": None}, {}),
        ({}, {"alg": "none"}),
        ({}, {"kid": None}),
        ({}, {"typ": "at+jwt"}),  # an access token of the same provider is no logout token
        ({}, {"typ": "JWT+id_token"}),
    ],
)
async def test_bad_logout_tokens_are_refused(
    gw: TestGateway,
    web_idp: Idp,
    browser: httpx.AsyncClient,
    claims: dict[str, object],
    header: dict[str, object],
) -> None:
    await logged_in(browser, gw)
    if header.get("alg") == "none":
        token = logout_token(web_idp, **claims).rsplit(".", 1)[0] + "."
        import base64
        import json

        head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(
            b"="
        )
        token = head.decode() + "." + token.split(".")[1] + "."
    else:
        now = int(time.time())
        body: dict[str, object] = {
            "iss": web_idp.issuer,
            "aud": "portal-web",
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
            "sub": "anna",
            "events": {LOGOUT_EVENT: {}},
        }
        body.update(claims)
        token = web_idp.mint(
            {k: v for k, v in body.items() if v is not None}, header={"typ": "logout+jwt", **header}
        )
    r = await browser.post(f"{gw.url}/auth/oidc/backchannel-logout", data={"logout_token": token})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert (await browser.get(f"{gw.url}/whoami")).status_code == 200


async def test_logout_token_replay_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    token = logout_token(web_idp)
    url = f"{gw.url}/auth/oidc/backchannel-logout"
    assert (await browser.post(url, data={"logout_token": token})).status_code == 200
    r = await browser.post(url, data={"logout_token": token})
    assert r.status_code == 400
    assert (await browser.post(url, data={"other": "x"})).status_code == 400
    assert (await browser.post(url, json={"logout_token": token})).status_code == 400


async def test_rp_initiated_logout(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    await logged_in(browser, gw)
    r = await browser.post(f"{gw.url}/auth/oidc/logout", headers={"accept": "application/json"})
    assert r.status_code == 200
    url = r.json()["logout_url"]
    assert url.startswith(f"{web_idp.issuer}/session/end?")
    assert "id_token_hint=" in url and "post_logout_redirect_uri=" in url
    assert (await browser.get(f"{gw.url}/whoami")).status_code == 401
    # The provider accepts the request (hint and redirect URI registered) and asks to confirm.
    page = await browser.get(url)
    assert page.status_code == 200 and forms_of(page.text)


async def test_refresh_rotates_and_failure_means_login_again(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    await logged_in(browser, gw)
    records = [k for k in gw.store._data if k.startswith("t:oidc:sess:")]
    assert len(records) == 1
    record_key = records[0]
    first = gw.store._data[record_key][0]
    assert '"refresh_token": "' in first
    # The access grant (300 s at the test provider) runs out: the next request refreshes.
    gw.clock.offset = 290
    assert (await browser.get(f"{gw.url}/whoami")).status_code == 200
    second = gw.store._data[record_key][0]
    import json

    assert json.loads(second)["refresh_token"] != json.loads(first)["refresh_token"]  # rotated
    assert json.loads(second)["grant_expires_at"] > json.loads(first)["grant_expires_at"]
    # A refresh the provider refuses (here: the old, rotated-out token) ends the session.
    gw.store._data[record_key] = (first, gw.store._data[record_key][1])
    gw.clock.offset = 600
    r = await browser.get(f"{gw.url}/whoami")
    assert r.status_code == 401 and r.json()["reason"] == "oidc_refresh_failed"
    assert (await browser.get(f"{gw.url}/whoami")).status_code == 401


async def test_session_without_refresh_ends_with_the_grant(
    web_idp: Idp, gateway_url: str, browser: httpx.AsyncClient
) -> None:
    gw = build_gateway(web_idp, gateway_url)
    gw.accounts.links[(web_idp.issuer, "anna")] = ANNA
    await gw.start()
    try:
        await logged_in(browser, gw)
        key = next(k for k in gw.store._data if k.startswith("t:oidc:sess:"))
        import json

        record = json.loads(gw.store._data[key][0])
        record["refresh_token"] = None
        record["ends_at"] = record["grant_expires_at"]
        gw.store._data[key] = (json.dumps(record), gw.store._data[key][1])
        gw.clock.offset = 301
        r = await browser.get(f"{gw.url}/whoami")
        assert r.status_code == 401 and r.json()["reason"] == "oidc_session_expired"
    finally:
        await gw.stop()


async def test_service_client_through_the_gateway(gw: TestGateway, web_idp: Idp) -> None:
    token = web_idp.client_credentials("portal:read")
    async with httpx.AsyncClient(timeout=10) as api:
        r = await api.get(f"{gw.url}/whoami", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json()["subject"] == "client:portal-api" and r.json()["kind"] == "service"
    assert r.json()["scopes"] == ["portal:read"] and r.json()["role"] is None
