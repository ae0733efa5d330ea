"""Brute force and enumeration: registration proofs, login names, SMS numbers. The answer
(status, error, reason, message) must not tell unknown, wrong and locked apart."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.conftest import Portal, totp_now
from tests.integration.test_roles import ANNA_TOTP

ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}

PASSWORD = "ein-langes-Passwort-2026"


def _shape(r: httpx.Response) -> tuple[int, Any, Any, Any, str | None]:
    body = r.json()
    return r.status_code, body.get("error"), body.get("reason"), body.get("message"), r.headers.get("www-authenticate")


async def _register(c: httpx.AsyncClient, identifier: str, proof_type: str, proof: str,
                    login: str = "attacker@example.at") -> httpx.Response:
    return await c.post("/auth/register", json={"login": login, "identifier": identifier, "proof_type": proof_type,
                                               "proof": proof, "password": PASSWORD})


async def test_registration_proof_guessing_locks_and_answers_the_same(portal: Portal) -> None:
    async with portal.client() as c:
        unknown = await _register(c, "1999999", "kundenkennwort", "Rate-Mal-1")
        wrong = await _register(c, "1000010", "kundenkennwort", "Rate-Mal-1")
        assert _shape(unknown) == _shape(wrong)
        for i in range(6):
            r = await _register(c, "1000010", "kundenkennwort", f"Rate-Mal-{i + 2}")
            assert _shape(r) == _shape(wrong), i
        # Locked now: even the correct Kundenkennwort gets the very same answer.
        locked = await _register(c, "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
        assert _shape(locked) == _shape(wrong)
        # The same identifier spelled differently is the same lock.
        for spelled in (" 1000010", "1000010 ", "01000010"):
            r = await _register(c, spelled, "kundenkennwort", "Mayr-KG-Kennwort")
            assert r.status_code != 201, spelled
        # PUK guessing on a line (8 digits: 5 tries must not be enough to sweep anything).
        for i in range(6):
            r = await _register(c, "436641000020", "puk", f"{i:08d}", login="other@example.at")
            assert r.status_code == 401
        r = await _register(c, "436641000020", "puk", "20202020", login="other@example.at")
        assert r.status_code == 401, "PUK lock did not hold"


async def test_login_name_enumeration_gets_one_answer(portal: Portal) -> None:
    async with portal.client() as c:
        unknown = await c.post("/auth/login/password", json={"login": "nobody@example.at", "password": "x" * 16})
        wrong = await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "x" * 16})
        assert _shape(unknown) == _shape(wrong)
        assert unknown.status_code == 401
        for _ in range(5):
            await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "y" * 16})
        locked = await c.post("/auth/login/password",
                              json=ANNA)
        assert _shape(locked) == _shape(wrong)
        # Case and whitespace variants of the login are the same account (and the same lock).
        r = await c.post("/auth/login/password", json={**ANNA, "login": " ANNA.Huber@example.at "})
        assert _shape(r) == _shape(wrong)


async def test_totp_guessing_is_locked(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.post("/auth/login/password", json=ANNA)
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        right = totp_now(ANNA_TOTP)
        wrong_codes = [f"{(int(right) + k) % 10**6:06d}" for k in range(1, 7)]
        shapes = set()
        for code in wrong_codes:
            shapes.add(_shape(await c.post("/auth/login/totp", headers=pending, json={"code": code})))
        r = await c.post("/auth/login/totp", headers=pending, json={"code": right})
        shapes.add(_shape(r))
        assert r.status_code == 401, "6 wrong TOTP codes did not lock the account"
        assert len(shapes) == 1


async def test_sms_send_is_silent_about_numbers(portal: Portal) -> None:
    async with portal.client() as c:
        answers = set()
        for msisdn in ("436641000040", "436649999999", "436641000040", "+436641000001", "0664 1000001"):
            r = await c.post("/auth/sms/send", json={"msisdn": msisdn})
            answers.add((r.status_code, r.text))
        assert len(answers) == 1, answers


async def test_sms_code_guessing_three_tries(portal: Portal) -> None:
    async with portal.client() as c:
        await c.post("/auth/sms/send", json={"msisdn": "436641000040"})
        code = portal.last_sms_code("436641000040")
        wrong = [f"{(int(code) + k) % 10**6:06d}" for k in (1, 2, 3)]
        for w in wrong:
            r = await c.post("/auth/sms/verify", json={"msisdn": "436641000040", "code": w})
            assert r.status_code == 401
        r = await c.post("/auth/sms/verify", json={"msisdn": "436641000040", "code": code})
        assert r.status_code == 401, "the 4th try must fail even when right"
