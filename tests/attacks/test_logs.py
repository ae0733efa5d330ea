"""No secret in any log: the access log, Python logging (every logger, DEBUG), the decision log."""

from __future__ import annotations

import logging

import pytest

from tests.integration.conftest import Portal, totp_now
from tests.integration.test_roles import ANNA_TOTP

ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}


async def test_no_secret_reaches_any_log(portal: Portal, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = ["anna-portal-2025", "Mayr-KG-Kennwort", "20202020", "30303030", "RE-2026-110030",
                          "ein-langes-Passwort-2026", "falsches-Passwort-1", "Huber-Kennwort-1", "JBSWY3DPEHPK3PXP"]
    async with portal.client() as c:
        # password + TOTP (and a failed attempt with a wrong password)
        await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "falsches-Passwort-1"})
        r = await c.post("/auth/login/password", json=ANNA)
        secrets.append(r.json()["token"])
        code = totp_now(ANNA_TOTP)
        r = await c.post("/auth/login/totp", headers={"Authorization": "Bearer " + r.json()["token"]},
                         json={"code": code})
        anna = r.json()["token"]
        secrets.append(anna)
        r = await c.get("/api/lines/436641000001/sim/puk", headers={"Authorization": "Bearer " + anna})
        assert r.status_code == 200
        puk = r.json().get("puk")
        # registrations: Kundenkennwort (wrong, then right), PUK, invoice number
        for proof in ("Falsches-Kennwort", "Mayr-KG-Kennwort"):
            r = await c.post("/auth/register", json={"login": "markus@mayr-kg.at", "identifier": "1000010",
                                                     "proof_type": "kundenkennwort", "proof": proof,
                                                     "password": "ein-langes-Passwort-2026"})
        secrets.append(r.json()["token"])
        r = await c.post("/auth/register", json={"login": "sophie@example.at", "identifier": "436641000020",
                                                 "proof_type": "puk", "proof": "20202020",
                                                 "password": "ein-langes-Passwort-2026"})
        secrets.append(r.json()["token"])
        r = await c.post("/auth/register", json={"login": "thomas@example.at", "identifier": "436641000030",
                                                 "proof_type": "invoice_number", "proof": "RE-2026-110030",
                                                 "password": "ein-langes-Passwort-2026"})
        secrets.append(r.json()["token"])
        # SMS: send, a wrong code, the right code, a step-up by SMS
        await c.post("/auth/sms/send", json={"msisdn": "436641000040"})
        sms = portal.last_sms_code("436641000040")
        await c.post("/auth/sms/verify", json={"msisdn": "436641000040", "code": "000000" if sms != "000000" else "1"})
        r = await c.post("/auth/sms/verify", json={"msisdn": "436641000040", "code": sms})
        secrets.append(r.json()["token"])
        # TOTP enrolment seed
        r = await c.post("/auth/register", json={"login": "eva@mayr-kg.at", "identifier": "1000010",
                                                 "proof_type": "kundenkennwort", "proof": "Mayr-KG-Kennwort",
                                                 "password": "ein-langes-Passwort-2026"})
        eva = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.post("/auth/totp/enroll", headers=eva, json={})
        seed = r.json()["secret"]
        await c.post("/auth/totp/confirm", headers=eva, json={"code": "000000"})
    secrets += [code, sms, seed]
    if isinstance(puk, str):
        secrets.append(puk)
    raw_tokens = [s.removeprefix("pgs_") for s in secrets if s.startswith("pgs_")]
    secrets += raw_tokens
    logs = {
        "access log": portal.decisions.getvalue(),
        # The gateway's own loggers at DEBUG; everything else at INFO and above (at DEBUG,
        # aiosqlite prints SQL parameters and the test's own httpcore prints Set-Cookie).
        "python logging": "\n".join(
            f"{rec.name} {rec.getMessage()} {rec.__dict__}" for rec in caplog.records
            if rec.name.split(".")[0] in ("gateway", "uvicorn", "demo") or rec.levelno >= logging.INFO
        ),
        "decision log": (portal.data_dir / "decisions.jsonl").read_text(),
    }
    leaks = [f"{name}: {secret[:12]}…" for name, text in logs.items() for secret in secrets if secret in text]
    # The invoice number is a registration proof but also an ordinary resource id; it must
    # not appear from the registration flow (no API call used it here).
    assert not leaks, leaks
    assert "eyJ" not in logs["access log"] + logs["python logging"], "a JWT (assertion) was logged"
