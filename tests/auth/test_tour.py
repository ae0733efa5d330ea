"""The README tour's critical action: refused without a second factor, done after an SMS step-up."""

from __future__ import annotations

import asyncio
import json
import re

from tests.integration.conftest import Portal, portal  # noqa: F401, F811 - the real gateway fixture
from tests.integration.test_roles import register

SOPHIE = "436641000020"
ROAMING = f"/api/lines/{SOPHIE}/barrings/roaming"


async def test_sophie_lifts_a_barring_after_an_sms_step_up(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        h = await register(c, "sophie.wagner@example.at", SOPHIE, "puk", "20202020")
        r = await c.post(f"/api/lines/{SOPHIE}/barrings", headers=h, json={"barring": "roaming"})
        assert r.status_code == 201, r.text
        r = await c.delete(ROAMING, headers=h)
        assert r.status_code == 401 and r.json()["step_up_url"] == "/auth/step-up?next=" + ROAMING
        assert (await c.post("/auth/sms/send", json={"msisdn": "0664 100 00 20"})).status_code == 202
        r = await c.post("/auth/step-up", headers=h,
                         json={"method": "sms", "msisdn": SOPHIE, "code": portal.last_sms_code(SOPHIE)})
        assert r.status_code == 200, r.text
        h = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.delete(ROAMING, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["lifted"] == "roaming"
        # The critical action was announced on her line, without any secret; the refused try was not.
        # The notice is sent once the answer is on its way: wait for it, do not race it.
        for _ in range(100):
            texts = [json.loads(x)["text"] for x in portal.outbox.read_text().splitlines()
                     if json.loads(x)["to"] == SOPHIE]
            notices = [t for t in texts if "Sperre wurde aufgehoben" in t]
            if notices:
                break
            await asyncio.sleep(0.05)
        assert len(notices) == 1, texts
        assert not re.search(r"\b\d{6}\b", notices[0])


async def test_a_replacement_sim_is_announced_on_the_line(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        h = await register(c, "sophie.wagner@example.at", SOPHIE, "puk", "20202020")
        await c.post("/auth/sms/send", json={"msisdn": SOPHIE})
        r = await c.post("/auth/step-up", headers=h,
                         json={"method": "sms", "msisdn": SOPHIE, "code": portal.last_sms_code(SOPHIE)})
        h = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.post(f"/api/lines/{SOPHIE}/sim/swap", headers=h, json={"sim_type": "esim"})
        assert 200 <= r.status_code < 300, r.text
        # The notice is sent once the answer is on its way: wait for it, do not race it.
        for _ in range(100):
            texts = [json.loads(x)["text"] for x in portal.outbox.read_text().splitlines()
                     if json.loads(x)["to"] == SOPHIE]
            if any("Ersatz-SIM wurde bestellt" in t for t in texts):
                break
            await asyncio.sleep(0.05)
        assert any("Ersatz-SIM wurde bestellt" in t for t in texts), texts
