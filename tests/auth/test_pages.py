"""Login pages: CSRF on every form, safe next=, security headers, languages, accessible forms."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from gateway.auth.seed import seed_demo_accounts
from gateway.auth.web import safe_next

from .helpers import PASSWORD, register

PAGES = [
    "/auth/login",
    "/auth/login/sms",
    "/auth/register",
    "/auth/register?role=member",
    "/auth/register?role=line",
    "/auth/register?role=holder",
    "/auth/login/totp",
]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "form without CSRF token"
    return match.group(1)


#: What a browser adds to a form post of the gateway's own page.
BROWSER = {"origin": "https://testserver"}


async def form_post(env, page: str, action: str, data: dict, **headers):
    """Post a page's form as a browser does: with its CSRF token and the page's Origin."""
    r = await env.client.get(page)
    data = {"csrf_token": csrf_of(r.text), **data}
    headers = {k: v for k, v in {"origin": BROWSER["origin"], **headers}.items() if v is not None}
    return await env.client.post(action, data=data, headers=headers)


@pytest.mark.parametrize("page", PAGES)
async def test_pages_have_security_headers(env, page: str) -> None:
    r = await env.client.get(page)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict] = []
        self.labels: set[str] = set()
        self.forms = 0
        self.csrf_per_form: list[bool] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms += 1
            self.csrf_per_form.append(False)
        if tag == "input" and a.get("name") == "csrf_token":
            self.csrf_per_form[-1] = True
        if tag == "input" and a.get("type") not in ("hidden", "radio"):
            self.inputs.append(a)
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"])


@pytest.mark.parametrize("page", PAGES)
async def test_every_form_has_csrf_and_every_field_a_label(env, page: str) -> None:
    parser = _Forms()
    parser.feed((await env.client.get(page)).text)
    assert all(parser.csrf_per_form), page
    for field in parser.inputs:
        assert field.get("id") in parser.labels, field


async def test_german_default_english_on_request(env) -> None:
    de = await env.client.get("/auth/login")
    assert '<html lang="de">' in de.text and "Anmelden" in de.text
    en = await env.client.get("/auth/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in en.text and "Log in" in en.text
    assert '<html lang="en">' in (await env.client.get("/auth/login?lang=en")).text


async def test_form_post_without_csrf_token_is_refused(env) -> None:
    await register(env.client)
    env.client.cookies.clear()
    await env.client.get("/auth/login")
    r = await env.client.post(
        "/auth/login/password", data={"login": "sophie@example.at", "password": PASSWORD}
    )
    assert r.status_code == 403 and r.json()["reason"] == "csrf_failed"


async def test_cross_site_form_post_is_refused(env) -> None:
    await register(env.client)
    env.client.cookies.clear()
    data = {"login": "sophie@example.at", "password": PASSWORD}
    r = await form_post(env, "/auth/login", "/auth/login/password", data, origin="https://evil.example")
    assert r.status_code == 403 and r.json()["reason"] == "cross_site_request"
    r = await form_post(
        env, "/auth/login", "/auth/login/password", data, origin=None, **{"sec-fetch-site": "cross-site"}
    )
    assert r.status_code == 403
    assert "set-cookie" not in r.headers or "pg_session" not in r.headers.get("set-cookie", "")


async def test_cross_site_json_is_refused(env) -> None:
    r = await env.client.post(
        "/auth/login/password",
        json={"login": "x", "password": "y"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    # a form can only send text/plain, not JSON: the API refuses it
    r = await env.client.post(
        "/auth/login/password",
        content=b'{"login":"x","password":"y"}',
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 400 and r.json()["reason"] == "json_required"


@pytest.mark.parametrize(
    ("nxt", "expected"),
    [
        ("//evil.example", "/auth/account"),
        ("//evil.example/api", "/auth/account"),
        ("https://evil.example/", "/auth/account"),
        ("/\\evil.example", "/auth/account"),
        ("javascript:alert(1)", "/auth/account"),
        ("/api/lines/436641000020/usage", "/api/lines/436641000020/usage"),
        ("/auth/account?x=1", "/auth/account?x=1"),
    ],
)
async def test_login_form_follows_only_safe_next(env, nxt: str, expected: str) -> None:
    await register(env.client)
    env.client.cookies.clear()
    r = await form_post(
        env,
        "/auth/login",
        "/auth/login/password",
        {"login": "sophie@example.at", "password": PASSWORD, "next": nxt},
        origin="https://testserver",
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == expected
    assert "__Host-pg_session=" in r.headers["set-cookie"]


def test_safe_next_table() -> None:
    for bad in [
        "",
        "//x",
        "///x",
        "\\\\x",
        "/\\x",
        "http://x",
        "x",
        "/a\nb",
        "/a\tb",
        " /x",
        "/" + "a" * 3000,
    ]:
        assert safe_next(bad, "/d") == "/d", bad
    assert safe_next("/ok/path?q=1#f", "/d") == "/ok/path?q=1#f"


async def test_wrong_password_page_ties_error_to_field(env) -> None:
    r = await form_post(
        env,
        "/auth/login",
        "/auth/login/password",
        {"login": "sophie@example.at", "password": "wrong-password-123"},
    )
    assert r.status_code == 401
    assert 'role="alert"' in r.text
    assert 'aria-invalid="true" aria-describedby="e-password"' in r.text
    assert 'id="e-password"' in r.text
    assert 'value="sophie@example.at"' in r.text and "wrong-password-123" not in r.text


async def test_html_flow_register_enrol_logout_login_with_totp(env) -> None:
    r = await form_post(
        env,
        "/auth/register?role=member",
        "/auth/register",
        {
            "role": "member",
            "identifier": "436641000020",
            "proof_type": "puk",
            "proof": "20202020",
            "login": "sophie@example.at",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/auth/account?registered=1"
    account = await env.client.get("/auth/account")
    assert "sophie@example.at" in account.text
    page = await form_post(env, "/auth/totp/enroll", "/auth/totp/enroll", {})
    assert "<svg" in page.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    assert 'for="f-sms_code"' in page.text  # the first TOTP also needs the code sent to the line
    r = await env.client.post(
        "/auth/totp/confirm",
        data={
            "csrf_token": csrf_of(page.text),
            "code": env.totp_now(secret),
            "sms_code": env.last_sms("436641000020"),
        },
        headers=BROWSER,
    )
    assert r.status_code == 303 and r.headers["location"] == "/auth/account?totp=1"
    account = await env.client.get("/auth/account")
    assert "Authenticator-App ersetzen" in account.text and "App einrichten</a>" not in account.text
    r = await form_post(env, "/auth/account", "/auth/logout", {})
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login")
    assert (await env.client.get("/auth/me")).status_code == 401
    env.clock.advance(60)
    r = await form_post(
        env,
        "/auth/login",
        "/auth/login/password",
        {"login": "sophie@example.at", "password": PASSWORD, "next": "/api/lines/436641000020/usage"},
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login/totp?")
    r = await form_post(
        env,
        r.headers["location"],
        "/auth/login/totp",
        {"code": env.totp_now(secret), "next": "/api/lines/436641000020/usage"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/api/lines/436641000020/usage"
    me = (await env.client.get("/auth/me")).json()
    assert sorted(me["auth_methods"]) == ["password", "totp"]


async def test_html_sms_login(env) -> None:
    r = await form_post(
        env, "/auth/login/sms", "/auth/sms/send", {"msisdn": "436641000040", "return_to": "login"}
    )
    assert r.status_code == 303
    page = await env.client.get(r.headers["location"])
    assert 'name="code"' in page.text
    r = await env.client.post(
        "/auth/sms/verify",
        data={
            "csrf_token": csrf_of(page.text),
            "msisdn": "436641000040",
            "code": env.last_sms("436641000040"),
        },
    )
    assert r.status_code == 303
    assert (await env.client.get("/auth/me")).json()["access_level"] == "restricted"


async def test_html_registration_refusal_shows_business_station_link(env) -> None:
    r = await form_post(
        env,
        "/auth/register?role=holder",
        "/auth/register",
        {
            "role": "holder",
            "identifier": "1000020",
            "proof_type": "kundenkennwort",
            "proof": "Alpenblick-Kennwort",
            "login": "martin",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 403
    assert "My Business Station" in r.text and 'role="alert"' in r.text


async def test_html_step_up(env) -> None:
    await seed_demo_accounts(env.db, services=env.services)
    r = await form_post(
        env,
        "/auth/login",
        "/auth/login/password",
        {"login": "anna.huber@example.at", "password": "anna-portal-2025"},
    )
    r = await form_post(
        env, r.headers["location"], "/auth/login/totp", {"code": env.totp_now("JBSWY3DPEHPK3PXP")}
    )
    assert r.status_code == 303
    env.clock.advance(11 * 60)
    page = await env.client.get("/auth/step-up?next=/api/customers/1000001/payment-method")
    assert page.status_code == 200 and 'value="totp"' in page.text
    r = await env.client.post(
        "/auth/step-up",
        data={
            "csrf_token": csrf_of(page.text),
            "method": "totp",
            "code": env.totp_now("JBSWY3DPEHPK3PXP"),
            "next": "/api/customers/1000001/payment-method",
        },
        headers=BROWSER,
    )
    assert r.status_code == 303 and r.headers["location"] == "/api/customers/1000001/payment-method"
    assert (await env.client.get("/auth/me")).json()["second_factor_fresh"] is True


async def test_account_page_needs_login(env) -> None:
    r = await env.client.get("/auth/account")
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login?next=")


async def test_static_css_is_served(env) -> None:
    assert (await env.client.get("/auth/static/auth.css")).status_code == 200
