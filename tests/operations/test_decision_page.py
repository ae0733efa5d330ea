"""The decision page on the operations listener, in Chromium: real traffic, then the page shows
it (server-rendered, then refreshed by its own script); nothing external loads; a failed reload
is shown with its error."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import decision_page
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.integration.conftest import ROOT
from tests.integration.test_roles import login_anna
from tests.operations.conftest import running_portal


async def _traffic(c: httpx.AsyncClient, h: dict[str, str]) -> None:
    assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200
    assert (await c.get("/api/lines/436641000020/usage", headers=h)).status_code == 404  # not hers
    # VPN actions are denied for everyone (a pointer to My Business Station).
    for _ in range(3):
        assert (await c.get("/api/vpn/vpn-alpenblick-1", headers=h)).status_code in (403, 404)


async def test_decision_page_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decision_page, "HISTORY_SECONDS", 0.5)  # points every 0.5 s, not every 10 s
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not installed at {CHROMIUM}")
    from playwright.async_api import async_playwright

    policy = tmp_path / "portal.polar"
    shutil.copy(ROOT / "policies" / "portal.polar", policy)
    async with (
        running_portal(tmp_path, **{"policy.path": str(policy)}) as run,
        run.portal.client() as c,
        run.portal.ops_client() as o,
    ):
        anna = await login_anna(c)
        await _traffic(c, anna)
        summary = (await o.get("/_gateway/decisions.json")).json()
        assert summary["by_outcome"]["allow"] >= 1 and summary["total"] >= 5
        assert any(role == "customer" for role, _ in summary["denied_roles"])
        assert any(action == "view_vpn" for action, _ in summary["denied_actions"])

        external: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                ops_url = run.portal.ops_url
                page.on("request", lambda r: None if r.url.startswith(ops_url) else external.append(r.url))
                errors: list[Any] = []

                def page_error(error: Any) -> None:
                    errors.append(error)

                page.on("pageerror", page_error)
                await page.goto(f"{run.portal.ops_url}/_gateway/decisions")
                assert await page.locator("#outcomes").inner_text() != ""
                assert "view_vpn" in await page.locator("#actions").inner_text()
                assert "customer" in await page.locator("#roles").inner_text()
                # The script refreshes from the JSON: new traffic shows without a reload.
                before = int(await page.locator("#total").inner_text())
                await _traffic(c, anna)
                # Polled from here: the page's CSP (rightly) forbids the eval wait_for_function needs.
                for _ in range(100):
                    total = int(await page.locator("#total").inner_text())
                    points = await page.locator("#chart polyline").first.get_attribute("points") \
                        if await page.locator("#chart polyline").count() else ""
                    if total > before and len((points or "").split()) >= 3:
                        break
                    await asyncio.sleep(0.2)
                assert total > before, "the page did not refresh itself"
                assert await page.locator("#chart polyline").count() > 0
                await page.screenshot(path=str(tmp_path / "decisions.png"), full_page=True)
                assert (tmp_path / "decisions.png").stat().st_size > 10_000

                # A broken policy push: the page says the reload failed and why.
                policy.write_text(policy.read_text() + "\nthis is not polar (\n")
                await run.app.gateway.reload()
                await page.reload()
                text = await page.locator("#policy").inner_text()
                assert "FAILED" in text and await page.locator("#policy").get_attribute("class") == "bad"
                await page.screenshot(path=str(tmp_path / "decisions-failed.png"), full_page=True)
                assert not errors, errors
            finally:
                await browser.close()
        assert external == [], f"the page loaded something from elsewhere: {external}"
        # Not on the client port.
        assert (await c.get("/_gateway/decisions")).status_code == 404
