"""What the decision page says (gateway/decision_page.py), read from its JSON and its HTML without
JavaScript: denied routes, step-ups completed at the source (a browser's step-up answers 303),
decisions over time drawn on the server, the shadow policy's state, and a failed reload that
stays visible after the next good one."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from gateway import decision_page
from gateway.decision_page import summarize_exposition
from tests.integration.conftest import ROOT
from tests.integration.test_roles import login_anna
from tests.operations.conftest import running_portal


def test_step_ups_completed_are_counted_where_they_complete_not_by_status() -> None:
    """A 303 on /auth/step-up is also the "log in first" redirect: only the counter counts."""
    text = (
        '# TYPE portal_gateway_requests_total counter\n'
        'portal_gateway_requests_total{route="/auth/step-up",action="control",status="303"} 4.0\n'
        'portal_gateway_requests_total{route="/auth/step-up",action="control",status="200"} 1.0\n'
        '# TYPE portal_gateway_step_up_completed_total counter\n'
        'portal_gateway_step_up_completed_total{method="sms_tan"} 2.0\n'
        'portal_gateway_step_up_completed_total{method="totp"} 1.0\n'
    )
    assert summarize_exposition(text, None).step_up_completed == 3


async def test_the_page_shows_routes_history_shadow_and_the_last_failed_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decision_page, "HISTORY_SECONDS", 0.2)
    policy = tmp_path / "portal.polar"
    shutil.copy(ROOT / "policies" / "portal.polar", policy)
    broken_shadow = tmp_path / "candidate.polar"
    broken_shadow.write_text("allow(actor, _action, _resource) if actor.hodls_line;\n")
    async with (
        running_portal(tmp_path, **{"policy.path": str(policy), "policy.shadow": str(broken_shadow)}) as run,
        run.portal.client() as c,
        run.portal.ops_client() as o,
    ):
        anna = await login_anna(c)
        for _ in range(4):
            assert (await c.get("/api/lines/436641000001/usage", headers=anna)).status_code == 200
            assert (await c.get("/api/lines/436641000020/usage", headers=anna)).status_code == 404
            await asyncio.sleep(0.25)
        s = (await o.get("/_gateway/decisions.json")).json()
        assert dict(s["denied_routes"]).get("GET /api/lines/{msisdn}/usage", 0) >= 4, s["denied_routes"]
        assert s["shadow_status"]["class"] == "bad" and "IGNORED" in s["shadow_status"]["text"]

        # Without JavaScript: the over-time charts are on the page itself, by outcome and by reason.
        page = (await o.get("/_gateway/decisions")).text
        over_time = page.split('id="over-time"', 1)[1].split("</section>", 1)[0]
        assert "<polyline" in over_time and 'data-key="allow"' in over_time
        reasons = page.split('id="over-time-reasons"', 1)[1].split("</section>", 1)[0]
        assert "<polyline" in reasons
        assert '<meta http-equiv="refresh"' in page  # inside <noscript>

        # A broken push, then a good one: the failure stays on the page with its revision.
        good = policy.read_text()
        policy.write_text(good + "\nthis is not polar (\n")
        await run.app.gateway.reload()
        policy.write_text(good)
        await run.app.gateway.reload()
        message = (await o.get("/_gateway/decisions.json")).json()["policy_message"]
        assert re.search(r"last failed reload: [0-9a-f]{12} at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: ", message), message
