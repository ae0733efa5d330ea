"""Accessibility audit with axe-core in Chromium: every page, German and English, 390 and 1280 px.

No serious or critical violation is allowed. A screenshot of every page is written to
``var/screenshots/`` (or ``$PORTAL_GATEWAY_SCREENSHOTS``) for review. axe-core comes from npm:
``npm install --prefix tests/browser/axe`` (tests/browser/axe/package.json pins the version);
without it the audit skips locally and fails under CI=true.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import REPO

AXE = Path(os.environ.get("PORTAL_GATEWAY_AXE", REPO / "tests/browser/axe/node_modules/axe-core/axe.min.js"))
SHOTS = Path(os.environ.get("PORTAL_GATEWAY_SCREENSHOTS", REPO / "var/screenshots"))
PASSWORD = "ein-langes-Passwort-2026"

ANONYMOUS = [
    "/auth/login",
    "/auth/login/sms",
    "/auth/register",
    "/auth/register?role=holder",
    "/auth/register?role=member",
    "/auth/register?role=line",
]
LOGGED_IN = ["/auth/account", "/auth/totp/enroll", "/auth/step-up?next=/api/lines/436641000020/usage"]


def _axe_source() -> str:
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"axe-core missing at {AXE}: run npm install --prefix tests/browser/axe")
        pytest.skip(f"axe-core missing at {AXE}")
    return AXE.read_text(encoding="utf-8")


async def _audit(page, name: str) -> list[str]:
    """Serious and critical violations on the page as it is now; a screenshot for review."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    result = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        f"{name}: {v['id']} ({v['impact']}) {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("lang", ["de", "en"])
async def test_every_page_has_no_serious_accessibility_violation(gateway, browser, lang: str, width: int) -> None:
    axe = _axe_source()
    context = await browser.new_context(
        locale="de-AT" if lang == "de" else "en-GB", viewport={"width": width, "height": 900}
    )
    await context.add_init_script(script=axe)
    page = await context.new_page()
    problems: list[str] = []
    for path in ANONYMOUS:
        sep = "&" if "?" in path else "?"
        await page.goto(gateway.url + path + f"{sep}lang={lang}")
        assert await page.locator("html").get_attribute("lang") == lang
        problems += await _audit(page, f"{lang}-{width}-{_slug(path)}")
    # An error state: a wrong SMS code (the field marked, the message announced once).
    await page.goto(gateway.url + f"/auth/login/sms?lang={lang}")
    await page.locator("#f-msisdn").fill("not-a-number")
    await page.locator("form[action='/auth/sms/send'] button[type=submit]").click()
    await page.wait_for_load_state()
    assert await page.locator("[role=alert]").count() == 1
    problems += await _audit(page, f"{lang}-{width}-sms-invalid-number")
    # The logged-in pages, after a registration through the form.
    await page.goto(gateway.url + f"/auth/register?role=member&lang={lang}")
    await page.locator("#f-identifier").fill("0664 1000020")
    await page.locator("input[name=proof_type][value=puk]").check()
    await page.locator("#f-proof").fill("20202020")
    await page.locator("#f-login").fill(f"sophie-{lang}-{width}@example.at")
    await page.locator("#f-password").fill(PASSWORD)
    await page.locator("form[action='/auth/register'] button[type=submit]").click()
    await page.wait_for_url("**/auth/account?registered=1")
    for path in LOGGED_IN:
        sep = "&" if "?" in path else "?"
        await page.goto(gateway.url + path + f"{sep}lang={lang}")
        problems += await _audit(page, f"{lang}-{width}-{_slug(path)}")
    await page.goto(gateway.url + f"/auth/totp/enroll?lang={lang}")
    await page.locator("form[action='/auth/totp/enroll'] button[type=submit]").click()
    await page.wait_for_load_state()
    assert await page.locator("#f-sms_code").count() == 1
    problems += await _audit(page, f"{lang}-{width}-enroll-qr")
    await context.close()
    assert not problems, "\n".join(problems)
