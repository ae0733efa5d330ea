"""Each role of docs/domain.md through the real gateway, policy, directory and demo backend.

The backend answers only with a valid gateway assertion and echoes who asked, so
every 200 here also proves that the backend verified the signed statement.
"""

from __future__ import annotations

import json

import httpx

from tests.integration.conftest import Portal, totp_now

ANNA_TOTP = "JBSWY3DPEHPK3PXP"


async def login_anna(c: httpx.AsyncClient) -> dict[str, str]:
    r = await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "anna-portal-2025"})
    assert r.status_code == 200, r.text
    assert r.json()["next"] == "totp"
    pending = {"Authorization": "Bearer " + r.json()["token"]}
    r = await c.post("/auth/login/totp", json={"code": totp_now(ANNA_TOTP)}, headers=pending)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


async def register(c: httpx.AsyncClient, login: str, identifier: str, proof_type: str, proof: str) -> dict[str, str]:
    r = await c.post(
        "/auth/register",
        json={"login": login, "identifier": identifier, "proof_type": proof_type, "proof": proof,
              "password": "ein-langes-Passwort-2026"},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


async def test_holder_with_totp(portal: Portal) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
        r = await c.get("/api/lines/436641000001/usage", headers=h)
        assert r.status_code == 200
        asked = r.json()["asked_by"]
        assert asked["access_level"] == "full" and set(asked["auth_methods"]) >= {"password", "totp"}
        assert r.headers["x-decision-id"].startswith("dec_")
        # Her login used TOTP: a critical action is allowed without another step-up.
        r = await c.put("/api/customers/1000001/payment-method", headers=h,
                        json={"method": "bank_transfer", "account_holder": "Anna Huber"})
        assert r.status_code == 200, r.text
        # Someone else's line: 404, never 403 (existence does not leak).
        r = await c.get("/api/lines/436641000020/usage", headers=h)
        assert r.status_code == 404
        r = await c.get("/api/lines/436649999999/usage", headers=h)
        assert r.status_code == 404


async def test_holder_by_kundenkennwort_needs_step_up_for_critical(portal: Portal) -> None:
    async with portal.client() as c:
        h = await register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
        for line in ("436641000010", "436641000011"):
            r = await c.get(f"/api/lines/{line}/usage", headers=h)
            assert r.status_code == 200, r.text
        r = await c.put("/api/customers/1000010/payment-method", headers=h,
                        json={"method": "bank_transfer", "account_holder": "Mayr KG"})
        assert r.status_code == 401
        assert r.json()["error"] == "step_up_required"
        assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
        r = await c.get("/api/lines/436641000011/sim/puk", headers=h)
        assert r.status_code == 401
        r = await c.post("/api/lines/436641000010/barrings", headers=h, json={"barring": "premium-sms"})
        assert r.status_code in (200, 201), r.text


async def test_authorised_person_registers_with_the_same_kundenkennwort(portal: Portal) -> None:
    async with portal.client() as c:
        await register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
        h = await register(c, "eva.lechner@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
        r = await c.get("/api/customers/1000010/profile", headers=h)
        assert r.status_code == 200


async def test_business_member_by_puk(portal: Portal) -> None:
    async with portal.client() as c:
        h = await register(c, "sophie.wagner@example.at", "436641000020", "puk", "20202020")
        r = await c.get("/api/lines/436641000020/usage", headers=h)
        assert r.status_code == 200
        r = await c.put("/api/lines/436641000020/tariff", headers=h, json={"tariff": "member-l"})
        assert r.status_code == 200, r.text
        r = await c.get("/api/contracts/ct-1000021/invoices", headers=h)
        assert r.status_code == 200
        # The framework company's line and the company's VPN are not hers.
        r = await c.get("/api/lines/436641000040/usage", headers=h)
        assert r.status_code == 404


async def test_business_member_by_old_invoice_is_refused(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.post("/auth/register", json={
            "login": "sophie@example.at", "identifier": "436641000020", "proof_type": "invoice_number",
            "proof": "RE-2026-100021", "password": "ein-langes-Passwort-2026"})
        assert r.status_code in (400, 401, 403)
        assert "RE-2026" not in r.text


async def test_split_private_part_sees_only_the_private_side(portal: Portal) -> None:
    async with portal.client() as c:
        h = await register(c, "thomas.gruber@example.at", "436641000030", "puk", "30303030")
        r = await c.get("/api/lines/436641000030/usage", headers=h)
        assert r.status_code == 200
        # Invariant 3: the business part of his own split contract is invisible to him.
        r = await c.get("/api/lines/436641000031/usage", headers=h)
        assert r.status_code == 404
        r = await c.get("/api/invoices/RE-2026-110031", headers=h)
        assert r.status_code == 404
        r = await c.get("/api/contracts/ct-1000030/invoices", headers=h)
        assert r.status_code == 200
        body = r.json()
        assert body["asked_by"]["parts"] == ["private"]
        numbers = json.dumps(body)
        assert "RE-2026-110030" in numbers and "RE-2026-110031" not in numbers


async def test_company_phone_by_sms_tan_is_restricted(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.post("/auth/sms/send", json={"msisdn": "436641000040"})
        assert r.status_code == 202
        code = portal.last_sms_code("436641000040")
        r = await c.post("/auth/sms/verify", json={"msisdn": "436641000040", "code": code})
        assert r.status_code == 200, r.text
        h = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.get("/api/lines/436641000040/usage", headers=h)
        assert r.status_code == 200
        assert r.json()["asked_by"]["access_level"] == "restricted"
        r = await c.post("/api/lines/436641000040/sim/block", headers=h, json={})
        assert r.status_code in (200, 201, 202), r.text
        r = await c.put("/api/lines/436641000040/tariff", headers={**h, "Accept-Language": "de-AT"},
                        json={"tariff": "business-l"})
        assert r.status_code == 403
        assert r.json()["error"] == "forbidden"
        assert r.headers["content-language"] == "de"
        assert r.json()["message"] and r.json()["reason"]
        r = await c.get("/api/invoices/RE-2026-110020", headers=h)
        assert r.status_code in (403, 404)


async def test_sms_send_answers_the_same_for_unknown_numbers(portal: Portal) -> None:
    async with portal.client() as c:
        known = await c.post("/auth/sms/send", json={"msisdn": "436641000040"})
        unknown = await c.post("/auth/sms/send", json={"msisdn": "436649999999"})
        assert known.status_code == unknown.status_code == 202
        assert known.json() == unknown.json()


async def test_vpn_is_denied_for_everyone_with_a_pointer(portal: Portal) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
        for vpn in ("vpn-alpenblick-1", "vpn-does-not-exist"):
            r = await c.get(f"/api/vpn/{vpn}", headers=h)
            assert r.status_code == 403
            assert r.json()["reason"] == "vpn_in_business_station"
            assert r.json()["hint_url"].startswith("https://")


async def test_company_customer_cannot_register(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.post("/auth/register", json={
            "login": "martin@alpenblick.at", "identifier": "1000020", "proof_type": "kundenkennwort",
            "proof": "Alpenblick-Kennwort", "password": "ein-langes-Passwort-2026"})
        assert r.status_code in (400, 403)
        assert "hint_url" in r.json()


async def test_anonymous_gets_401_and_public_status_works(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.get("/api/lines/436641000001/usage")
        assert r.status_code == 401
        r = await c.get("/api/status")
        assert r.status_code == 200
        assert r.json()["asked_by"] is None
        assert r.json()["received"]["x_portal_headers"] == {}


async def test_spoofed_identity_does_not_reach_backend(portal: Portal) -> None:
    async with portal.client() as c:
        h = await register(c, "sophie.wagner@example.at", "436641000020", "puk", "20202020")
        r = await c.get("/api/lines/436641000020/usage",
                        headers={**h, "X-Portal-Subject": "acc_anna", "X_Portal_Access_Level": "full"})
        assert r.status_code == 200
        assert r.json()["received"]["x_portal_headers"]["x-portal-subject"] != "acc_anna"


async def test_backend_refuses_requests_that_bypass_the_gateway(portal: Portal) -> None:
    async with httpx.AsyncClient(base_url=portal.backend_url) as c:
        r = await c.get("/api/lines/436641000001/usage", headers={"X-Portal-Subject": "acc_anna"})
        assert r.status_code == 401


async def test_decision_log_records_every_decision_without_secrets(portal: Portal) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
        r = await c.get("/api/lines/436641000001/usage", headers=h)
        decision_id = r.headers["x-decision-id"]
    text = (portal.data_dir / "decisions.jsonl").read_text()
    records = [json.loads(x) for x in text.splitlines()]
    rec = [x for x in records if x["decision_id"] == decision_id][0]
    assert rec["action"] == "view_usage" and rec["outcome"] == "allow"
    assert len(rec["policy_revision"]) == 64
    assert "anna-portal-2025" not in text and "pgs_" not in text


async def test_readiness_reports_every_dependency(portal: Portal) -> None:
    async with portal.ops_client() as c:
        r = await c.get("/_gateway/ready")
        assert r.status_code == 200
        assert {"policy", "directory", "database"} <= set(r.json()["checks"])
        m = await c.get("/_gateway/metrics")
        assert "portal_gateway_requests_total" in m.text
