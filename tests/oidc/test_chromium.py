"""The browser login in headless Chromium: real provider pages, real cookies, real redirects."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

from .gateway_app import TestGateway, build_gateway
from .idp import Idp

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed")


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
