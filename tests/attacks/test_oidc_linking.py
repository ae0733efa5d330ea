"""Account takeover through OIDC linking, performed against the whole gateway and the real
test IdP (tests/idp): someone who knows a line's PUK, a current invoice number or a
Kundenkennwort logs in at the IdP with their own IdP account and "links" it.

A registration proof proves a contract, not an account: it may make a NEW account
where password registration would, and never opens an existing one. Linking to an
existing account takes that account's own login (password and, where enrolled, its
second factor) in the same browser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.oidc.idp import Idp, start_idp
from tests.oidc.portal import (
    ANNA,
    OidcPortal,
    anna_full_login,
    free_port,
    idp_login,
    oidc_portal,
    password_login,
)

SOPHIE = {
    "login": "sophie.wagner@example.at",
    "identifier": "436641000020",
    "proof_type": "puk",
    "proof": "20202020",
    "password": "Sophie-Portal-2026!",
}
TAKEOVER_PROOFS = [
    pytest.param("436641000020", "puk", "20202020", id="puk"),
    pytest.param("436641000020", "invoice_number", "RE-2026-110021", id="invoice_number"),
]


@pytest.fixture(scope="module")
def gw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, gw_port: int) -> Iterator[Idp]:
    provider = start_idp(
        Path(tmp_path_factory.mktemp("idp")), gateway=f"http://127.0.0.1:{gw_port}"
    )
    yield provider
    provider.stop()


@pytest.fixture
async def gw(tmp_path: Path, idp: Idp, gw_port: int) -> AsyncIterator[OidcPortal]:
    async with oidc_portal(tmp_path, idp, gw_port) as portal:
        yield portal


async def register_sophie(gw: OidcPortal) -> str:
    async with gw.client() as c:
        r = await c.post("/auth/register", json=SOPHIE)
        assert r.status_code == 201, r.text
        account_id: str = r.json()["account"]["id"]
        return account_id


async def pending_link(c: httpx.AsyncClient, gw: OidcPortal, who: str = "markus") -> None:
    """The attacker's own IdP login, unknown to the gateway: the link page is next."""
    r = await idp_login(c, gw.url, who, f"{who}-idp-pass")
    assert r.status_code == 303 and r.headers["location"] == "/auth/oidc/link", r.text


async def me(c: httpx.AsyncClient) -> httpx.Response:
    return await c.get("/auth/me")


@pytest.mark.parametrize(("identifier", "proof_type", "proof"), TAKEOVER_PROOFS)
async def test_a_line_proof_never_opens_the_lines_existing_account_json(
    gw: OidcPortal, identifier: str, proof_type: str, proof: str
) -> None:
    sophie = await register_sophie(gw)
    async with gw.client() as attacker:
        await pending_link(attacker, gw)
        r = await attacker.post(
            "/auth/oidc/link",
            json={"identifier": identifier, "proof_type": proof_type, "proof": proof},
        )
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["reason"] == "already_registered"
        assert "account page" in body["message"] and body["link_from"] == "/auth/account"
        # No session came out of it, and the IdP login still opens nothing.
        assert (await me(attacker)).status_code == 401
        assert (await attacker.get("/api/lines/436641000020/usage")).status_code in (401, 404)
    async with gw.client() as again:
        r = await idp_login(again, gw.url, "markus", "markus-idp-pass")
        assert r.headers["location"] == "/auth/oidc/link"  # still unlinked
    # Sophie's account is hers alone: her password still works and nothing was linked.
    async with gw.client() as owner:
        body = await password_login(owner, SOPHIE["login"], SOPHIE["password"])
        assert body["session"]["subject"] == sophie


@pytest.mark.parametrize(("identifier", "proof_type", "proof"), TAKEOVER_PROOFS)
async def test_a_line_proof_never_opens_the_lines_existing_account_html(
    gw: OidcPortal, identifier: str, proof_type: str, proof: str
) -> None:
    await register_sophie(gw)
    async with gw.client(headers={"accept": "text/html"}) as attacker:
        await pending_link(attacker, gw)
        page = await attacker.get("/auth/oidc/link")
        assert page.status_code == 200 and 'id="link-existing"' not in page.text
        r = await attacker.post(
            "/auth/oidc/link",
            data={"identifier": identifier, "proof_type": proof_type, "proof": proof},
        )
        assert r.status_code == 409, r.text
        assert "text/html" in r.headers["content-type"]
        assert "Kontoseite" in r.text and "account page" in r.text
        assert "pg_session" not in r.headers.get("set-cookie", "")
        assert (await me(attacker)).status_code == 401


async def test_kundenkennwort_makes_a_new_account_never_annas(gw: OidcPortal) -> None:
    """The IdP's "anna" even carries Anna's verified e-mail: still not her account."""
    async with gw.client() as own:
        anna = (await anna_full_login(own))["session"]["subject"]
    for as_json in (True, False):
        async with gw.client() as attacker:
            await pending_link(attacker, gw, "anna" if as_json else "eva")
            proof = {"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "Huber-Kennwort-1"}
            if as_json:
                r = await attacker.post("/auth/oidc/link", json=proof)
                assert r.status_code == 200, r.text
            else:
                r = await attacker.post("/auth/oidc/link", data=proof)
                assert r.status_code == 303, r.text
            who = (await me(attacker)).json()
            # What password registration with the Kundenkennwort would give: a new
            # customer account, with its own login, never Anna's (no TOTP asked of it).
            assert who["subject"] != anna and who["login"] != ANNA[0]
            assert who["role"] == "customer" and who["auth_methods"] == ["oidc"]


async def test_the_logged_in_owner_links_from_her_own_login(gw: OidcPortal) -> None:
    sophie = await register_sophie(gw)
    async with gw.client() as owner:
        await password_login(owner, SOPHIE["login"], SOPHIE["password"])
        await pending_link(owner, gw, "eva")
        page = await owner.get("/auth/oidc/link")
        assert 'id="link-existing"' in page.text and SOPHIE["login"] in page.text
        r = await owner.post("/auth/oidc/link", json={"link_to": "account"})
        assert r.status_code == 200, r.text
        assert r.json()["account"] == sophie
        assert (await me(owner)).json()["subject"] == sophie  # her own session goes on
    async with gw.client() as later:
        r = await idp_login(later, gw.url, "eva", "eva-idp-pass", params={"next": "/auth/me"})
        assert r.status_code == 303 and r.headers["location"] == "/auth/me"
        assert (await me(later)).json()["subject"] == sophie


async def test_linking_to_an_account_with_totp_needs_the_second_factor(gw: OidcPortal) -> None:
    async with gw.client() as c:
        first = await password_login(c, ANNA[0], ANNA[1])
        assert first["status"] == "pending"  # password only: TOTP is enrolled
        await pending_link(c, gw, "anna")
        page = await c.get("/auth/oidc/link")
        assert 'id="link-existing"' not in page.text
        r = await c.post("/auth/oidc/link", json={"link_to": "account"})
        assert r.status_code == 403 and r.json()["reason"] == "oidc_link_needs_login"
        anna = (await anna_full_login(c))["session"]["subject"]
        r = await c.post("/auth/oidc/link", json={"link_to": "account"})
        assert r.status_code == 200 and r.json()["account"] == anna


async def test_link_to_account_without_any_login_is_refused(gw: OidcPortal) -> None:
    await register_sophie(gw)
    async with gw.client() as attacker:
        await pending_link(attacker, gw)
        for send in ({"json": {"link_to": "account"}}, {"data": {"link_to": "account"}}):
            r = await attacker.post("/auth/oidc/link", **send)  # type: ignore[arg-type]
            assert r.status_code == 403, r.text
        assert (await me(attacker)).status_code == 401


async def test_a_forced_callback_cannot_plant_the_attackers_idp_login_in_the_owners_browser(
    gw: OidcPortal,
) -> None:
    """Login CSRF toward linking: the attacker signs in at the IdP, keeps the callback URL
    (code + state) and makes the logged-in owner's browser open it. The state is bound to
    the browser that started the login, so nothing is pending there to link."""
    from urllib.parse import urljoin

    from tests.oidc.gateway_app import forms_of

    await register_sophie(gw)
    async with gw.client() as attacker:
        r = await attacker.get("/auth/oidc/login")
        callback = ""
        for _ in range(20):
            if r.status_code in (302, 303):
                target = urljoin(str(r.url), r.headers["location"])
                if target.startswith(f"{gw.url}/auth/oidc/callback"):
                    callback = target
                    break
                r = await attacker.get(target)
                continue
            fields = dict(forms_of(r.text)[0]["fields"])
            if fields.get("prompt") == "login":
                fields.update(login="markus", password="markus-idp-pass")
            r = await attacker.post(urljoin(str(r.url), forms_of(r.text)[0]["action"]), data=fields)
        assert callback
    async with gw.client() as owner:
        await password_login(owner, SOPHIE["login"], SOPHIE["password"])
        r = await owner.get(callback)
        assert r.status_code == 400 and r.json()["reason"] == "oidc_state_invalid"
        r = await owner.post("/auth/oidc/link", json={"link_to": "account"})
        assert r.status_code == 400 and r.json()["reason"] == "oidc_link_expired"
    async with gw.client() as again:
        r = await idp_login(again, gw.url, "markus", "markus-idp-pass")
        assert r.headers["location"] == "/auth/oidc/link"  # never linked to Sophie


async def test_a_cross_site_page_cannot_post_the_link(gw: OidcPortal) -> None:
    await register_sophie(gw)
    async with gw.client() as owner:
        await password_login(owner, SOPHIE["login"], SOPHIE["password"])
        await pending_link(owner, gw, "eva")
        for headers in (
            {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
            {"origin": "https://evil.example"},
        ):
            r = await owner.post("/auth/oidc/link", data={"link_to": "account"}, headers=headers)
            assert r.status_code == 403, r.text
        r = await owner.post("/auth/oidc/link", json={"link_to": "account"})
        assert r.status_code == 200  # the owner's own page still can
