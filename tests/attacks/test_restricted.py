"""Invariant 1: a restricted session (SMS-TAN login or Benutzer-Login) never performs a C or
X action other than set_barring, block_sim and manage_own_login — whoever the person is,
whatever second factor it adds afterwards."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Portal, totp_now

LUKAS = "436641000040"
ANNA = "436641000001"


def _actions(line: str, contract: str, customer: str) -> list[tuple[str, str, dict[str, str] | None]]:
    """Every C/X action a restricted session must not perform (docs/domain.md section 2)."""
    return [
        ("PUT", f"/api/lines/{line}/tariff", {"tariff": "business-l"}),
        ("POST", f"/api/lines/{line}/addons", {"addon": "data-10gb"}),
        ("DELETE", f"/api/lines/{line}/addons/data-10gb", None),
        ("DELETE", f"/api/lines/{line}/barrings/roaming", None),
        ("POST", f"/api/lines/{line}/sim/unblock", {}),
        ("POST", f"/api/lines/{line}/sim/swap", {"sim_type": "esim"}),
        ("GET", f"/api/lines/{line}/sim/puk", None),
        ("POST", f"/api/contracts/{contract}/extension", {}),
        ("POST", f"/api/contracts/{contract}/cancellation", {}),
        ("PUT", f"/api/customers/{customer}/profile", {"email": "x@evil.example"}),
        ("PUT", f"/api/customers/{customer}/payment-method", {"method": "sepa", "iban": "AT611904300234573201"}),
        ("PUT", f"/api/customers/{customer}/customer-password", {"new_password": "Evil-Kennwort-1"}),
    ]


async def _sms_login(c: httpx.AsyncClient, portal: Portal, msisdn: str) -> dict[str, str]:
    assert (await c.post("/auth/sms/send", json={"msisdn": msisdn})).status_code == 202
    r = await c.post("/auth/sms/verify", json={"msisdn": msisdn, "code": portal.last_sms_code(msisdn)})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["access_level"] == "restricted"
    return {"Authorization": "Bearer " + r.json()["token"]}


async def _assert_no_change_possible(c: httpx.AsyncClient, h: dict[str, str], line: str, contract: str,
                                     customer: str) -> None:
    bad = []
    for method, path, body in _actions(line, contract, customer):
        r = await c.request(method, path, headers=h, json=body)
        if r.status_code not in (403, 404):
            bad.append(f"{method} {path} → {r.status_code} {r.text[:100]}")
    assert not bad, "\n".join(bad)
    # The two protective actions stay possible on the own line.
    r = await c.post(f"/api/lines/{line}/barrings", headers=h, json={"barring": "premium-sms"})
    assert r.status_code in (200, 201), r.text


async def test_company_phone_sms_session_cannot_change_anything(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _sms_login(c, portal, LUKAS)
        await _assert_no_change_possible(c, h, LUKAS, "ct-1000020", "1000020")


async def test_holder_logging_in_by_sms_is_restricted_too(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _sms_login(c, portal, ANNA)
        await _assert_no_change_possible(c, h, ANNA, "ct-1000001", "1000001")
        for path in ("/api/contracts/ct-1000001/invoices", "/api/customers/1000001/profile",
                     "/api/invoices/RE-2026-110001", f"/api/lines/{ANNA}/itemized-bill"):
            r = await c.get(path, headers=h)
            assert r.status_code in (403, 404), (path, r.status_code)


async def test_sms_session_cannot_enrol_totp(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _sms_login(c, portal, LUKAS)
        r = await c.post("/auth/totp/enroll", headers=h, json={})
        assert r.status_code == 401, r.text
        assert "secret" not in r.text


async def test_step_up_does_not_lift_a_restricted_session(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _sms_login(c, portal, LUKAS)
        await c.post("/auth/sms/send", json={"msisdn": LUKAS})
        r = await c.post("/auth/step-up", headers=h, json={"method": "sms", "code": portal.last_sms_code(LUKAS)})
        if r.status_code == 200:
            assert r.json()["session"]["access_level"] == "restricted"
            h = {"Authorization": "Bearer " + r.json()["token"]}
        await _assert_no_change_possible(c, h, LUKAS, "ct-1000020", "1000020")
        # Step-up by TOTP: an SMS session has no account, so no TOTP.
        r = await c.post("/auth/step-up", headers=h, json={"method": "totp", "code": totp_now("JBSWY3DPEHPK3PXP")})
        assert r.status_code == 401


async def test_benutzer_login_with_own_totp_stays_restricted(portal: Portal) -> None:
    """A Benutzer-Login (sms_tan registration) may manage its own login, e.g. enrol TOTP; the
    second factor it gains that way must not lift the restriction."""
    async with portal.client() as c:
        await c.post("/auth/sms/send", json={"msisdn": LUKAS})
        r = await c.post("/auth/register", json={
            "login": "lukas.steiner@alpenblick.at", "identifier": LUKAS, "proof_type": "sms_tan",
            "proof": portal.last_sms_code(LUKAS), "password": "ein-langes-Passwort-2026"})
        assert r.status_code == 201, r.text
        assert r.json()["account"]["access_level"] == "restricted"
        h = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.post("/auth/totp/enroll", headers=h, json={})
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        r = await c.post("/auth/totp/confirm", headers=h,
                         json={"code": totp_now(secret), "sms_code": portal.last_sms_code(LUKAS)})
        assert r.status_code == 200, r.text
        h = {"Authorization": "Bearer " + r.json()["token"]}
        assert r.json()["session"]["access_level"] == "restricted"
        await _assert_no_change_possible(c, h, LUKAS, "ct-1000020", "1000020")


async def test_register_while_logged_in_ends_the_old_session(portal: Portal) -> None:
    async with portal.client() as c:
        old = await _sms_login(c, portal, LUKAS)
        r = await c.post("/auth/register", headers=old, json={
            "login": "markus@mayr-kg.at", "identifier": "1000010", "proof_type": "kundenkennwort",
            "proof": "Mayr-KG-Kennwort", "password": "ein-langes-Passwort-2026"})
        assert r.status_code == 201, r.text
        r = await c.get(f"/api/lines/{LUKAS}/usage", headers=old)
        assert r.status_code == 401
        # The new session is Markus's only; nothing of the restricted one is mixed in.
        assert r.status_code == 401
