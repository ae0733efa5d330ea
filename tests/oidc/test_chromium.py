"""The browser login in headless Chromium: real provider pages, real cookies, real redirects."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .gateway_app import TestGateway, build_gateway
from .idp import Idp, start_idp
from .portal import free_port, idp_login, oidc_portal

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Under CI=true a missing Chromium is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    not shutil.which("chromium") and os.environ.get("CI") != "true", reason="chromium not installed"
)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def gw(web_idp: Idp, gateway_url: str) -> AsyncIterator[TestGateway]:
    gateway = build_gateway(web_idp, gateway_url)
    await gateway.start()
    yield gateway
    await gateway.stop()


async def test_login_link_and_logout_in_chromium(gw: TestGateway, web_idp: Idp) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{gw.url}/auth/oidc/login?next=/whoami")
            # The provider's sign-in page.
            await page.fill("input[name=login]", "anna")
            await page.fill("input[name=password]", "anna-idp-pass")
            await page.click("button[type=submit]")
            # Consent.
            await page.click("button[type=submit]")
            # Unknown subject: the gateway's link page asks for the registration proof.
            await page.wait_for_url(f"{gw.url}/auth/oidc/link")
            await page.fill("input[name=identifier]", "1000001")
            await page.select_option("select[name=proof_type]", "kundenkennwort")
            await page.fill("input[name=proof]", "Huber-Kennwort-1")
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{gw.url}/whoami")
            body = await page.text_content("body")
            assert body is not None and '"subject":"acc_anna"' in body.replace(" ", "")
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["pg_session"]["httpOnly"] and cookies["pg_session"]["sameSite"] == "Lax"
            assert "pg_oidc" not in cookies and "pg_oidc_link" not in cookies

            # Signing out at the provider ends the gateway session (back-channel logout).
            await page.goto(f"{web_idp.issuer}/session/end")
            await page.click("button[name=logout]")
            await page.wait_for_load_state()
            response = await page.goto(f"{gw.url}/whoami")
            assert response is not None and response.status == 401
        finally:
            await browser.close()
    assert gw.accounts.links[(web_idp.issuer, "anna")].subject == "acc_anna"


async def sign_in_at_idp(page: Any, gateway: str, login: str, password: str) -> None:
    """Fill the provider's sign-in form, then confirm consent when it asks."""
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    for _ in range(3):
        await page.wait_for_load_state()
        if page.url.startswith(gateway):
            return
        if await page.query_selector("input[name=prompt][value=consent]"):
            await page.click("button[type=submit]")
    await page.wait_for_url(f"{gateway}/**")


@pytest.fixture
def portal_idp(tmp_path: Path) -> Iterator[tuple[Idp, int]]:
    port = free_port()
    (tmp_path / "idp").mkdir()
    provider = start_idp(tmp_path / "idp", gateway=f"http://127.0.0.1:{port}")
    yield provider, port
    provider.stop()


async def test_owner_links_from_the_account_page_and_logout_ends_the_idp_session(
    tmp_path: Path, portal_idp: tuple[Idp, int]
) -> None:
    """The whole gateway: password login page, the account page's provider button, the
    link page's "link to this account", and the logout page that sends the browser to the
    provider (a page, because form-action 'self' stops a form post's redirect elsewhere)."""
    from playwright.async_api import async_playwright

    idp, port = portal_idp
    async with oidc_portal(tmp_path, idp, port) as gw:
        async with gw.client() as c:
            r = await c.post(
                "/auth/register",
                json={
                    "login": "sophie.wagner@example.at",
                    "identifier": "436641000020",
                    "proof_type": "puk",
                    "proof": "20202020",
                    "password": "Sophie-Portal-2026!",
                },
            )
            assert r.status_code == 201, r.text
            sophie = r.json()["account"]["id"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{gw.url}/auth/login")
                await page.fill("input[name=login]", "sophie.wagner@example.at")
                await page.fill("input[name=password]", "Sophie-Portal-2026!")
                await page.click("form[action='/auth/login/password'] button[type=submit]")
                await page.wait_for_url(f"{gw.url}/auth/account")
                await page.click("#oidc-link a[data-provider=customer]")
                await sign_in_at_idp(page, gw.url, "eva", "eva-idp-pass")
                await page.wait_for_url(f"{gw.url}/auth/oidc/link")
                await page.click("#link-existing button[type=submit]")
                await page.wait_for_url(f"{gw.url}/auth/account")
                assert (await page.text_content("#who")) == "sophie.wagner@example.at"
            finally:
                await browser.close()
        # From now on the IdP login opens Sophie's account.
        async with gw.client() as later:
            r = await idp_login(later, gw.url, "eva", "eva-idp-pass", params={"next": "/auth/me"})
            assert r.status_code == 303 and r.headers["location"] == "/auth/me"
            assert (await later.get("/auth/me")).json()["subject"] == sophie

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{gw.url}/auth/oidc/login?provider=customer&next=/auth/account")
                await sign_in_at_idp(page, gw.url, "eva", "eva-idp-pass")
                await page.wait_for_url(f"{gw.url}/auth/account")
                await page.click("form[action='/auth/logout'] button[type=submit]:not([name])")
                # The gateway's page sends the browser on to the provider's logout.
                await page.wait_for_url(f"{idp.issuer}/session/end**")
                await page.click("button[name=logout]")
                await page.wait_for_url(f"{gw.url}/auth/login**")
                # The IdP session is over: starting again asks for the password.
                await page.goto(f"{gw.url}/auth/oidc/login?provider=customer")
                await page.wait_for_selector("input[name=password]")
            finally:
                await browser.close()
