"""Registration by contract proof: each rule of docs/domain.md section 1 as a request."""

from __future__ import annotations

import logging

import pytest

from .helpers import PASSWORD, bearer, register


async def test_business_member_registers_with_puk(env) -> None:
    r = await register(env.client)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["account"]["role"] == "business_member"
    assert body["account"]["access_level"] == "full"
    assert (body["account"]["bound_customer"], body["account"]["bound_msisdn"]) == ("1000021", "436641000020")
    assert body["token"].startswith("pgs_")
    who = await env.client.get("/api/whoami", headers=bearer(body["token"]))
    assert who.json()["access_level"] == "full"


async def test_business_member_registers_with_current_invoice(env) -> None:
    r = await register(env.client, proof_type="invoice_number", proof="RE-2026-110021")
    assert r.status_code == 201, r.text


async def test_old_invoice_number_is_refused(env) -> None:
    r = await register(env.client, proof_type="invoice_number", proof="RE-2026-100021")
    assert r.status_code == 401
    assert r.json()["reason"] == "registration_failed"


async def test_invoice_of_another_contract_is_refused(env) -> None:
    r = await register(env.client, proof_type="invoice_number", proof="RE-2026-110001")
    assert r.status_code == 401
    assert r.json()["reason"] == "registration_failed"


async def test_holder_and_authorised_person_register_with_kundenkennwort(env) -> None:
    r1 = await register(
        env.client,
        login="markus",
        identifier="1000010",
        proof_type="kundenkennwort",
        proof="Mayr-KG-Kennwort",
    )
    r2 = await register(
        env.client,
        login="eva.lechner@example.at",
        identifier="1000010",
        proof_type="kundenkennwort",
        proof="Mayr-KG-Kennwort",
    )
    assert (r1.status_code, r2.status_code) == (201, 201), r2.text
    assert r2.json()["account"]["role"] == "customer"
    assert r2.json()["account"]["bound_customer"] == "1000010"


async def test_company_customer_gets_business_station_pointer_whatever_the_proof(env) -> None:
    for proof in ("Alpenblick-Kennwort", "wrong"):
        r = await register(
            env.client, login="martin", identifier="1000020", proof_type="kundenkennwort", proof=proof
        )
        assert r.status_code == 403, r.text
        assert r.json()["hint_url"].startswith("https://")


async def test_split_private_part_with_puk_and_business_part_only_by_sms(env) -> None:
    r = await register(env.client, login="thomas", identifier="436641000030", proof="30303030")
    assert r.status_code == 201, r.text
    assert r.json()["account"]["role"] == "split_private"
    r = await register(env.client, login="thomas-firma", identifier="436641000031", proof="31313131")
    assert r.status_code == 403, r.text  # no full account for the business part, even with its PUK


async def test_company_phone_registers_restricted_benutzer_login_by_sms(env) -> None:
    assert (await env.client.post("/auth/sms/send", json={"msisdn": "436641000040"})).status_code == 202
    code = env.last_sms("436641000040")
    r = await register(env.client, login="lukas", identifier="436641000040", proof_type="sms_tan", proof=code)
    assert r.status_code == 201, r.text
    account = r.json()["account"]
    assert (account["role"], account["access_level"], account["bound_msisdn"]) == (
        "line_user",
        "restricted",
        "436641000040",
    )


async def test_second_registration_for_same_person_and_line_is_refused(env) -> None:
    assert (await register(env.client)).status_code == 201
    r = await register(env.client, login="sophie2@example.at")
    assert r.status_code == 409
    assert r.json()["reason"] == "already_registered"


async def test_login_name_taken(env) -> None:
    assert (await register(env.client)).status_code == 201
    r = await register(env.client, identifier="436641000030", proof="30303030")
    assert r.status_code == 409
    assert r.json()["reason"] == "login_taken"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("elf-zeichen", "password_too_short"),  # 11 characters
        ("436641000020", "password_is_identifier"),
        ("password1234", "password_too_common"),
    ],
)
async def test_password_rules_on_registration(env, password: str, reason: str) -> None:
    r = await register(env.client, password=password)
    assert r.status_code == 400
    assert r.json()["reason"] == reason
    assert await env.services.accounts.by_login("sophie@example.at") is None


async def test_unknown_identifier_answers_like_a_wrong_proof(env) -> None:
    wrong = await register(env.client, proof="99999999")
    unknown = await register(env.client, identifier="436649999999", proof="99999999")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["reason"] == unknown.json()["reason"] == "registration_failed"
    assert wrong.json()["message"] == unknown.json()["message"]


async def test_sixth_kundenkennwort_is_refused_even_when_right(env, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.auth.regulation")
    answers = []
    for _ in range(5):
        r = await register(
            env.client,
            login="anna2",
            identifier="1000001",
            proof_type="kundenkennwort",
            proof="Falsches-Kennwort",
        )
        answers.append((r.status_code, r.json()["reason"], r.json()["message"]))
    right = await register(
        env.client, login="anna2", identifier="1000001", proof_type="kundenkennwort", proof="Huber-Kennwort-1"
    )
    assert (right.status_code, right.json()["reason"], right.json()["message"]) == answers[0]
    assert env.metric("portal_gateway_auth_lockouts_total", kind="proof") == 1
    # The customer's Kundenkennwort itself is locked too, whichever identifier reaches it.
    assert env.metric("portal_gateway_auth_lockouts_total", kind="proof_secret") == 1
    lines = sorted(r.getMessage().split()[1] for r in caplog.records if "lockout" in r.getMessage())
    assert lines == ["kind=proof", "kind=proof_secret"]
    assert "Huber-Kennwort-1" not in caplog.text and "Falsches-Kennwort" not in caplog.text
    env.clock.advance(15 * 60 + 1)
    ok = await register(
        env.client, login="anna2", identifier="1000001", proof_type="kundenkennwort", proof="Huber-Kennwort-1"
    )
    assert ok.status_code == 201, ok.text


async def test_registration_needs_the_proof_type_the_policy_wants(env) -> None:
    r = await register(env.client, identifier="1000001", proof_type="puk", proof="01010101", login="anna3")
    assert r.status_code in (401, 403)
    assert await env.services.accounts.by_login("anna3") is None


async def test_password_is_stored_as_argon2id(env) -> None:
    r = await register(env.client)
    stored = await env.services.accounts.password_hash(r.json()["account"]["id"])
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
