"""Phone numbers as people type them: one normalizer behind SMS login, registration and enrolment."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gateway.auth.component import build_auth
from gateway.auth.phone import normalize
from gateway.settings import SettingsError

from .conftest import auth_settings
from .helpers import register

LUKAS = "436641000040"


@pytest.mark.parametrize(
    "typed",
    [
        "0664 1000040",
        "0664/1000040",
        "0664-100 00 40",
        "(0664) 100 00 40",
        "+43 664 1000040",
        "+43 (0) 664 1000040",
        "0043 664 1000040",
        "0043-664-1000040",
        "436641000040",
        " +43.664.1000040 ",
    ],
)
def test_forms_people_type_become_the_directory_digits(typed: str) -> None:
    assert normalize(typed) == LUKAS


@pytest.mark.parametrize("typed", ["not-a-number", "", "0664", "+43+664 1000040", "(0664 1000040", "０６６４1000040",
                                   "06641000040" * 3, "+0664 1000040", "0664 10000४0"])
def test_what_is_not_a_phone_number(typed: str) -> None:
    assert normalize(typed) is None


def test_the_country_code_is_the_portals() -> None:
    assert normalize("0170 1234567", "49") == "491701234567"


async def test_sms_login_with_a_national_number_sends_the_code(env) -> None:
    r = await env.client.post("/auth/sms/send", json={"msisdn": "0664 100 00 40"})
    assert r.status_code == 202
    code = env.last_sms(LUKAS)
    r = await env.client.post("/auth/sms/verify", json={"msisdn": "+43 (664) 1000040", "code": code})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["bound_msisdn"] == LUKAS


async def test_not_a_number_is_a_400_but_an_unknown_number_looks_known(env) -> None:
    r = await env.client.post("/auth/sms/send", json={"msisdn": "not-a-number"})
    assert (r.status_code, r.json()["reason"]) == (400, "invalid_msisdn")
    unknown = await env.client.post("/auth/sms/send", json={"msisdn": "0664 9999999"})
    known = await env.client.post("/auth/sms/send", json={"msisdn": "0664 1000040"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    assert env.sms_count("436649999999") == 0 and env.sms_count(LUKAS) == 1


async def test_registration_accepts_the_national_form_of_the_line(env) -> None:
    r = await register(env.client, identifier="0664 / 100 00 20")  # Sophie's PUK registration
    assert r.status_code == 201, r.text
    assert r.json()["account"]["bound_msisdn"] == "436641000020"
    bad = await register(env.client, login="x@example.at", identifier="+43 66x 1000020")
    assert (bad.status_code, bad.json()["reason"]) == (400, "invalid_msisdn")


async def test_html_sms_form_names_the_field(env) -> None:
    page = await env.client.get("/auth/login/sms")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = await env.client.post(
        "/auth/sms/send",
        data={"csrf_token": csrf, "msisdn": "not-a-number"},
        headers={"Origin": "https://testserver", "Accept": "text/html"},
    )
    assert r.status_code == 400
    assert 'aria-invalid="true"' in r.text and "keine Rufnummer" in r.text


def test_a_bad_country_code_stops_the_start(tmp_path, db, demo_directory, authorizer, clock) -> None:
    with pytest.raises(SettingsError, match="sms.country_code"):
        build_auth(
            auth_settings(tmp_path, sms={"country_code": "+43"}),
            store=None,  # type: ignore[arg-type]
            db=db,
            directory=demo_directory,
            authorizer=authorizer,
            clock=clock,
            registry=CollectorRegistry(),
        )
