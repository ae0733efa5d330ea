"""The browser login end to end: a real provider, the gateway over a real socket, httpx as browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urljoin

import httpx
import pytest

from .gateway_app import TestGateway, browser_login, build_gateway, forms_of, location
from .helpers import ANNA, browser_client
from .idp import Idp


@pytest.fixture
async def gw(web_idp: Idp, gateway_url: str) -> AsyncIterator[TestGateway]:
    gateway = build_gateway(web_idp, gateway_url)
    await gateway.start()
    yield gateway
    await gateway.stop()


def new_browser() -> httpx.AsyncClient:
    return browser_client()


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with new_browser() as client:
        yield client


def link_anna(gw: TestGateway, idp: Idp) -> None:
    gw.accounts.links[(idp.issuer, "anna")] = ANNA


async def whoami(client: httpx.AsyncClient, gw: TestGateway) -> httpx.Response:
    return await client.get(f"{gw.url}/whoami")


async def test_login_page_gets_the_providers(gw: TestGateway, browser: httpx.AsyncClient) -> None:
    r = await browser.get(f"{gw.url}/auth/oidc/providers")
    assert r.json() == {
        "providers": [
            {
                "name": "customer",
                "display_name": "Kunden-IdP",
                "login_url": "/auth/oidc/login?provider=customer",
            }
        ]
    }
    assert gw.component.providers_for_login_page()[0]["name"] == "customer"


async def test_authorization_request_uses_pkce_state_nonce(
    gw: TestGateway, browser: httpx.AsyncClient
) -> None:
    r = await browser.get(f"{gw.url}/auth/oidc/login", params={"next": "https://evil.example/"})
    assert r.status_code == 302
    url = location(r)
    assert url.startswith(gw.component.providers["customer"].settings.issuer + "/auth?")
    for param in (
        "state=",
        "nonce=",
        "code_challenge=",
        "code_challenge_method=S256",
        "response_type=code",
    ):
        assert param in url
    assert "pg_oidc" in r.cookies and "httponly" in r.headers["set-cookie"].lower()


async def test_linked_subject_logs_in(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    r = await browser_login(browser, gw.url, "anna", "anna-idp-pass", next_path="/whoami")
    assert r.status_code == 303 and location(r) == "/whoami"
    me = await whoami(browser, gw)
    assert me.status_code == 200
    assert me.json()["subject"] == "acc_anna" and me.json()["methods"] == ["oidc"]
    assert me.json()["role"] == "customer" and me.json()["bound_customer"] == "1000001"


async def test_open_redirect_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    r = await browser_login(browser, gw.url, "anna", "anna-idp-pass", next_path="//evil.example/x")
    assert r.status_code == 303 and location(r) == "/auth/account"  # oidc.default_next: a page that exists


async def test_unknown_subject_links_once_with_the_registration_proof(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    r = await browser_login(browser, gw.url, "anna", "anna-idp-pass", next_path="/whoami")
    assert r.status_code == 303 and location(r) == "/auth/oidc/link"
    assert (await whoami(browser, gw)).status_code == 401  # no session before the proof
    page = await browser.get(f"{gw.url}/auth/oidc/link")
    assert page.status_code == 200 and forms_of(page.text)[0]["action"] == "/auth/oidc/link"

    wrong = await browser.post(
        f"{gw.url}/auth/oidc/link",
        json={"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "wrong"},
    )
    assert wrong.status_code == 401
    ok = await browser.post(
        f"{gw.url}/auth/oidc/link",
        json={"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "Huber-Kennwort-1"},
    )
    assert ok.status_code == 200 and ok.json() == {"linked": True, "next": "/whoami"}
    request = gw.accounts.requests[-1]
    assert request.subject == "anna" and request.login_hint == "anna.huber@example.at"
    me = await whoami(browser, gw)
    assert me.status_code == 200 and me.json()["subject"] == "acc_anna"
    # The pending link is used up.
    again = await browser.post(
        f"{gw.url}/auth/oidc/link",
        json={"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "Huber-Kennwort-1"},
    )
    assert again.status_code == 400 and again.json()["reason"] == "oidc_link_expired"

    # Later logins map straight to the account.
    async with new_browser() as other:
        r = await browser_login(other, gw.url, "anna", "anna-idp-pass", next_path="/whoami")
        assert r.status_code == 303 and location(r) == "/whoami"
        assert (await whoami(other, gw)).json()["subject"] == "acc_anna"


async def test_tricky_phone_number_claim_is_refused(
    gw: TestGateway, browser: httpx.AsyncClient
) -> None:
    r = await browser_login(browser, gw.url, "trick", "trick-idp-pass")
    assert r.status_code == 400 and r.json()["reason"] == "oidc_claims_invalid"
    assert (await whoami(browser, gw)).status_code == 401


async def test_tampered_state_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    back = await browser_login(browser, gw.url, "anna", "anna-idp-pass", stop_at_callback=True)
    callback = location(back)
    tampered = re.sub(r"state=([^&]+)", lambda m: "state=" + m.group(1)[::-1], callback)
    r = await browser.get(tampered)
    assert r.status_code == 400 and r.json()["reason"] == "oidc_state_invalid"
    assert (await whoami(browser, gw)).status_code == 401


async def test_callback_in_another_browser_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    back = await browser_login(browser, gw.url, "anna", "anna-idp-pass", stop_at_callback=True)
    async with new_browser() as attacker_victim:
        r = await attacker_victim.get(location(back))
        assert r.status_code == 400 and r.json()["reason"] == "oidc_state_invalid"
        assert (await whoami(attacker_victim, gw)).status_code == 401
    # ... and the state is used up: not even the right browser can use it now.
    r = await browser.get(location(back))
    assert r.status_code == 400 and r.json()["reason"] == "oidc_state_invalid"


async def test_code_replay_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    back = await browser_login(browser, gw.url, "anna", "anna-idp-pass", stop_at_callback=True)
    callback = location(back)
    assert (await browser.get(callback)).status_code == 303
    # The same callback again: the state is gone.
    r = await browser.get(callback)
    assert r.status_code == 400 and r.json()["reason"] == "oidc_state_invalid"
    # The used code under a fresh, valid state of this browser: the provider refuses it.
    fresh = await browser_login(browser, gw.url, "anna", "anna-idp-pass", stop_at_callback=True)
    code = re.search(r"code=([^&]+)", callback)
    assert code
    replay = re.sub(r"code=([^&]+)", "code=" + code.group(1), location(fresh))
    r = await browser.get(replay)
    assert r.status_code == 400 and r.json()["reason"] == "oidc_code_rejected"


async def test_tampered_nonce_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    start = await browser.get(f"{gw.url}/auth/oidc/login")
    authorize = re.sub(r"nonce=([^&]+)", "nonce=attacker-chosen-nonce", location(start))
    r = await browser.get(authorize)
    r = await _through_provider(browser, r, "anna", "anna-idp-pass")
    answer = await browser.get(location(r))
    assert answer.status_code == 400 and answer.json()["reason"] == "oidc_nonce_invalid"
    assert (await whoami(browser, gw)).status_code == 401


async def test_tampered_code_challenge_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    link_anna(gw, web_idp)
    start = await browser.get(f"{gw.url}/auth/oidc/login")
    authorize = re.sub(r"code_challenge=([^&]+)", "code_challenge=" + "A" * 43, location(start))
    r = await _through_provider(browser, await browser.get(authorize), "anna", "anna-idp-pass")
    answer = await browser.get(location(r))
    assert answer.status_code == 400 and answer.json()["reason"] == "oidc_code_rejected"


async def test_provider_error_is_refused(gw: TestGateway, browser: httpx.AsyncClient) -> None:
    start = await browser.get(f"{gw.url}/auth/oidc/login")
    state = re.search(r"state=([^&]+)", location(start))
    assert state
    r = await browser.get(
        f"{gw.url}/auth/oidc/callback", params={"error": "access_denied", "state": state.group(1)}
    )
    assert r.status_code == 400 and r.json()["reason"] == "oidc_provider_error"


async def _through_provider(
    client: httpx.AsyncClient, response: httpx.Response, login: str, password: str
) -> httpx.Response:
    for _ in range(20):
        if response.status_code in (302, 303):
            target = urljoin(str(response.url), location(response))
            if "/auth/oidc/callback" in target:
                return response
            response = await client.get(target)
            continue
        form = forms_of(response.text)[0]
        fields = dict(form["fields"])
        if fields.get("prompt") == "login":
            fields.update(login=login, password=password)
        response = await client.post(urljoin(str(response.url), form["action"]), data=fields)
    raise AssertionError("no way back to the gateway")


async def test_cross_site_link_post_is_refused(
    gw: TestGateway, web_idp: Idp, browser: httpx.AsyncClient
) -> None:
    r = await browser_login(browser, gw.url, "anna", "anna-idp-pass")
    assert location(r) == "/auth/oidc/link"
    proof = {"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "Huber-Kennwort-1"}
    r = await browser.post(
        f"{gw.url}/auth/oidc/link",
        data=proof,
        headers={"sec-fetch-site": "cross-site", "origin": "null"},  # a sandboxed foreign page
    )
    assert r.status_code == 403
    r = await browser.post(
        f"{gw.url}/auth/oidc/link", data=proof, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert not gw.accounts.links
