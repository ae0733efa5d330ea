"""Step-up bypass attempts on the X actions (invariant 5 and the SMS-TAN rules)."""

from __future__ import annotations

import httpx

from tests.attacks.conftest import ClockedPortal
from tests.integration.conftest import Portal, totp_now
from tests.integration.test_roles import ANNA_TOTP, login_anna, register

MARKUS_LINE = "436641000010"

X_ACTIONS = [
    ("PUT", "/api/customers/1000010/payment-method", {"method": "sepa", "iban": "AT611904300234573201"}),
    ("DELETE", f"/api/lines/{MARKUS_LINE}/barrings/roaming", None),
    ("POST", f"/api/lines/{MARKUS_LINE}/sim/unblock", {}),
    ("POST", f"/api/lines/{MARKUS_LINE}/sim/swap", {"sim_type": "esim"}),
    ("GET", f"/api/lines/{MARKUS_LINE}/sim/puk", None),
    ("POST", "/api/contracts/ct-1000010/cancellation", {}),
    ("PUT", "/api/customers/1000010/customer-password", {"new_password": "Neues-Kennwort-99"}),
]


async def _markus(c: httpx.AsyncClient) -> dict[str, str]:
    return await register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")


async def _assert_all_x_need_step_up(c: httpx.AsyncClient, h: dict[str, str]) -> None:
    bad = []
    for method, path, body in X_ACTIONS:
        r = await c.request(method, path, headers=h, json=body)
        ok = (r.status_code == 401 and r.json().get("error") == "step_up_required"
              and 'error="insufficient_user_authentication"' in r.headers.get("www-authenticate", ""))
        if not ok:
            bad.append(f"{method} {path} → {r.status_code} {r.text[:100]}")
    assert not bad, "\n".join(bad)


async def test_kundenkennwort_registration_alone_never_does_an_x_action(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _markus(c)
        await _assert_all_x_need_step_up(c, h)
        # A fresh password login (no TOTP enrolled) is no second factor either.
        r = await c.post("/auth/login/password", json={"login": "markus@mayr-kg.at",
                                                       "password": "ein-langes-Passwort-2026"})
        assert r.status_code == 200 and r.json()["status"] == "ok"
        await _assert_all_x_need_step_up(c, {"Authorization": "Bearer " + r.json()["token"]})


async def test_sms_step_up_code_is_single_use_and_bound_to_the_line(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _markus(c)
        await c.post("/auth/sms/send", json={"msisdn": MARKUS_LINE})
        code = portal.last_sms_code(MARKUS_LINE)
        # The code sent to line 010, claimed for line 011 (also Markus's): refused.
        r = await c.post("/auth/step-up", headers=h, json={"method": "sms", "code": code, "msisdn": "436641000011"})
        assert r.status_code == 401
        r = await c.post("/auth/step-up", headers=h, json={"method": "sms", "code": code, "msisdn": MARKUS_LINE})
        assert r.status_code == 200, r.text
        new = {"Authorization": "Bearer " + r.json()["token"]}
        # The old token is gone after the rotation, the new one may do X actions.
        assert (await c.get(f"/api/lines/{MARKUS_LINE}/sim/puk", headers=h)).status_code == 401
        r = await c.get(f"/api/lines/{MARKUS_LINE}/sim/puk", headers=new)
        assert r.status_code == 200, r.text
        # Replay of the same code on another fresh session: refused.
        r = await c.post("/auth/login/password", json={"login": "markus@mayr-kg.at",
                                                       "password": "ein-langes-Passwort-2026"})
        other = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.post("/auth/step-up", headers=other, json={"method": "sms", "code": code, "msisdn": MARKUS_LINE})
        assert r.status_code == 401
        await _assert_all_x_need_step_up(c, other)


async def test_sms_step_up_to_a_line_of_someone_else_is_refused(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _markus(c)
        # The attacker controls Lukas's company phone (or any SIM) and receives its code.
        for line in ("436641000040", "436641000001"):
            await c.post("/auth/sms/send", json={"msisdn": line})
            code = portal.last_sms_code(line)
            r = await c.post("/auth/step-up", headers=h, json={"method": "sms", "code": code, "msisdn": line})
            assert r.status_code == 401, (line, r.text)
        await _assert_all_x_need_step_up(c, h)


async def test_totp_step_up_needs_the_accounts_own_totp(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _markus(c)
        # Anna's TOTP code is no second factor for Markus.
        r = await c.post("/auth/step-up", headers=h, json={"method": "totp", "code": totp_now(ANNA_TOTP)})
        assert r.status_code == 401
        await _assert_all_x_need_step_up(c, h)


async def test_stale_second_factor_needs_step_up(clocked: ClockedPortal) -> None:
    async with clocked.client() as c:
        h = await login_anna(c)
        r = await c.get("/api/lines/436641000001/sim/puk", headers=h)
        assert r.status_code == 200, r.text
        clocked.clock.advance(11 * 60)
        r = await c.get("/api/lines/436641000001/sim/puk", headers=h)
        assert r.status_code == 401 and r.json()["error"] == "step_up_required", r.text


async def test_a_session_without_fresh_factor_cannot_replace_the_totp_to_step_up(clocked: ClockedPortal) -> None:
    """SIM-swap by session theft: whoever holds Anna's session after her second factor went
    stale (a stolen cookie, a shared computer) must not enrol a TOTP seed of their own —
    replacing hers — and use it as the step-up for order_sim_swap."""
    async with clocked.client() as c:
        h = await login_anna(c)
        clocked.clock.advance(11 * 60)
        r = await c.post("/auth/totp/enroll", headers=h, json={})
        if r.status_code == 200:
            secret = r.json()["secret"]
            r = await c.post("/auth/totp/confirm", headers=h,
                             json={"code": totp_now(secret, clocked.clock())})
            if r.status_code == 200:
                h2 = {"Authorization": "Bearer " + r.json()["token"]}
                r = await c.post("/api/lines/436641000001/sim/swap", headers=h2, json={"sim_type": "esim"})
            assert r.status_code == 401, "stolen session replaced the TOTP and stepped up: " + r.text
        else:
            assert r.status_code == 401
            assert r.json()["error"] == "step_up_required"
            assert 'insufficient_user_authentication' in r.headers["www-authenticate"]
        # Anna's own authenticator still works for the step-up.
        r = await c.post("/auth/step-up", headers=h, json={"method": "totp",
                                                           "code": totp_now(ANNA_TOTP, clocked.clock())})
        assert r.status_code == 200, r.text
        h = {"Authorization": "Bearer " + r.json()["token"]}
        # With a fresh factor she may replace her authenticator.
        r = await c.post("/auth/totp/enroll", headers=h, json={})
        assert r.status_code == 200, r.text
