"""The SIM-swap fraud: a Kundenkennwort alone must not become a second factor.

The attacker knows the holder's Kundenkennwort (phished, or from an old letter)
but not the holder's phone. They register, try to enrol TOTP (which would let
them step up and order a replacement SIM) and are refused without the SMS-TAN
that went to the holder's line; the holder gets notices of both steps.
"""

from __future__ import annotations

import json

from .helpers import PASSWORD, bearer, register

MAYR_LINES = ("436641000010", "436641000011")  # customer 1000010, Kundenkennwort Mayr-KG-Kennwort


def outbox(env) -> list[dict[str, str]]:
    if not env.outbox.exists():
        return []
    return [json.loads(x) for x in env.outbox.read_text().splitlines()]


async def register_with_kundenkennwort(env) -> str:
    r = await register(
        env.client,
        login="fraud@example.at",
        identifier="1000010",
        proof_type="kundenkennwort",
        proof="Mayr-KG-Kennwort",
    )
    assert r.status_code == 201, r.text
    env.client.cookies.clear()
    return r.json()["token"]


async def test_first_totp_without_the_sms_code_of_the_line_is_refused(env) -> None:
    token = await register_with_kundenkennwort(env)
    # The registration told the holder's lines, without any secret in the text.
    notices = [m for m in outbox(env) if m["to"] in MAYR_LINES]
    assert {m["to"] for m in notices} == set(MAYR_LINES)
    assert all("fraud@example.at" in m["text"] and "registriert" in m["text"] for m in notices)
    assert not any(PASSWORD in m["text"] or "Mayr-KG-Kennwort" in m["text"] for m in outbox(env))

    enrol = await env.client.post("/auth/totp/enroll", headers=bearer(token))
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["sms_to"].endswith("010")  # the code went to the holder's (first) line
    sent_code = env.last_sms("436641000010")

    # The fraudster has the seed but not the phone: no code, a guessed code, a code for another line.
    r = await env.client.post("/auth/totp/confirm", json={"code": env.totp_now(secret)}, headers=bearer(token))
    assert (r.status_code, r.json()["reason"]) == (401, "sms_code_required")
    guess = "000000" if sent_code != "000000" else "111111"
    env.clock.advance(30)
    r = await env.client.post(
        "/auth/totp/confirm", json={"code": env.totp_now(secret), "sms_code": guess}, headers=bearer(token)
    )
    assert (r.status_code, r.json()["reason"]) == (401, "invalid_sms_code")
    me = (await env.client.get("/auth/me", headers=bearer(token))).json()
    assert me["totp_enabled"] is False and me["second_factor_fresh"] is False
    # No notice of an enrolment went out: nothing was enrolled.
    assert not any("Authenticator" in m["text"] for m in outbox(env))


async def test_first_totp_with_the_code_from_the_line_works_and_the_line_is_told(env) -> None:
    token = await register_with_kundenkennwort(env)
    enrol = (await env.client.post("/auth/totp/enroll", headers=bearer(token))).json()
    code = env.last_sms("436641000010")
    r = await env.client.post(
        "/auth/totp/confirm",
        json={"code": env.totp_now(enrol["secret"]), "sms_code": code},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["totp"] == "active"
    enrolled = [m for m in outbox(env) if "Authenticator" in m["text"]]
    assert {m["to"] for m in enrolled} == set(MAYR_LINES)
    assert not any(code in m["text"] or enrol["secret"] in m["text"] for m in enrolled)


async def test_the_code_may_go_to_another_line_of_the_contract_but_not_to_a_foreign_one(env) -> None:
    token = await register_with_kundenkennwort(env)
    r = await env.client.post("/auth/totp/enroll", json={"msisdn": "0664 1000011"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert env.sms_count("436641000011") == 2  # the registration notice and the code
    env.clock.advance(60)
    foreign = await env.client.post("/auth/totp/enroll", json={"msisdn": "+43 664 1000001"}, headers=bearer(token))
    assert (foreign.status_code, foreign.json()["reason"]) == (400, "line_not_of_account")
    assert env.sms_count("436641000001") == 0


async def test_a_line_account_confirms_with_a_code_to_its_own_line(env) -> None:
    r = await register(env.client)  # Sophie, PUK of 436641000020
    token = r.json()["token"]
    env.client.cookies.clear()
    assert "registriert" in outbox(env)[-1]["text"] and outbox(env)[-1]["to"] == "436641000020"
    enrol = (await env.client.post("/auth/totp/enroll", headers=bearer(token))).json()
    r = await env.client.post(
        "/auth/totp/confirm",
        json={"code": env.totp_now(enrol["secret"]), "sms_code": env.last_sms("436641000020")},
        headers=bearer(token),
    )
    assert r.status_code == 200, r.text


async def test_the_authenticator_app_shows_the_portals_name(env) -> None:
    from urllib.parse import parse_qs, urlsplit

    token = await register_with_kundenkennwort(env)
    uri = (await env.client.post("/auth/totp/enroll", headers=bearer(token))).json()["uri"]
    page = await env.client.get("/auth/login")
    brand = page.text.split('<p class="brand">')[1].split("<")[0]
    assert parse_qs(urlsplit(uri).query)["issuer"] == [brand]
