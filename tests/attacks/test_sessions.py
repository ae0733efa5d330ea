"""Session attacks: fixation, pending sessions, reuse after logout, tokens where they do not
belong, garbage bearers, and a cookie and a bearer of two accounts at once."""

from __future__ import annotations

import secrets

import pytest

from tests.attacks.conftest import raw_one
from tests.integration.conftest import Portal, totp_now
from tests.integration.test_roles import ANNA_TOTP, login_anna, register

COOKIE = "pg_session"  # demo config: cookie_secure = false, so no __Host- prefix
ANNA_LINE = "436641000001"
ANNA_PASSWORD = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}


async def test_fixation_a_cookie_chosen_before_login_is_never_adopted(portal: Portal) -> None:
    chosen = secrets.token_urlsafe(32)
    async with portal.client(cookies={COOKIE: chosen}) as c:
        r = await c.post("/auth/login/password", json=ANNA_PASSWORD)
        assert r.status_code == 200
        assert r.json()["token"] != "pgs_" + chosen
        pending_cookie = r.cookies.get(COOKIE)
        assert pending_cookie and pending_cookie != chosen
        # the login page's own post (a cookie request: a browser says where it comes from)
        r = await c.post(
            "/auth/login/totp", json={"code": totp_now(ANNA_TOTP)}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert r.status_code == 200, r.text
        final = r.cookies.get(COOKIE)
        assert final and final not in (chosen, pending_cookie)
    async with portal.client() as c:
        for token in (chosen, pending_cookie):
            r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers={"Cookie": f"{COOKIE}={token}"})
            assert r.status_code == 401, token


async def test_pending_session_can_do_nothing_but_finish_the_login(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.post("/auth/login/password", json=ANNA_PASSWORD)
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=pending)
        assert r.status_code == 401
        r = await c.get("/api/status", headers=pending)
        assert r.status_code == 200 and r.json()["asked_by"] is None
        for path, body in (("/auth/step-up", {"method": "totp", "code": totp_now(ANNA_TOTP)}),
                           ("/auth/step-up", {"method": "sms", "code": "000000", "msisdn": ANNA_LINE}),
                           ("/auth/totp/enroll", {}), ("/auth/totp/confirm", {"code": "123456"})):
            r = await c.post(path, headers=pending, json=body)
            assert r.status_code == 401, (path, r.status_code, r.text)
            assert "token" not in r.json() and "secret" not in r.json()
        r = await c.get("/auth/me", headers=pending)
        assert r.status_code == 401
        # ... and the pending session still finishes normally afterwards (the TOTP step used
        # above was spent on a rejected step-up, so use the next one's neighbour window).
        r = await c.post("/auth/login/totp", headers=pending, json={"code": totp_now(ANNA_TOTP)})
        assert r.status_code in (200, 401)


async def test_session_is_dead_after_logout(portal: Portal) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
        assert (await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=h)).status_code == 200
        r = await c.post("/auth/logout", headers=h, json={})
        assert r.status_code == 200
        assert (await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=h)).status_code == 401
        assert (await c.get("/auth/me", headers=h)).status_code == 401
        r = await c.post("/auth/step-up", headers=h, json={"method": "totp", "code": totp_now(ANNA_TOTP)})
        assert r.status_code == 401


async def test_logout_everywhere_ends_other_sessions(portal: Portal) -> None:
    async with portal.client() as c:
        a = await login_anna(c)
    async with portal.client() as c:
        r = await c.post("/auth/login/password", json=ANNA_PASSWORD)
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        # the first login used the current step: wait is not possible, so logout-everywhere from `a`
        r = await c.post("/auth/logout", headers=a, json={"everywhere": True})
        assert r.status_code == 200
        assert (await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=a)).status_code == 401
        r = await c.post("/auth/login/totp", headers=pending, json={"code": totp_now(ANNA_TOTP)})
        assert r.status_code == 401


@pytest.mark.parametrize("param", ["access_token", "token", "session", "pg_session", "authorization"])
async def test_token_in_query_string_is_not_a_credential(portal: Portal, param: str) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
    token = h["Authorization"].removeprefix("Bearer ")
    async with portal.client() as c:  # a client without the login's cookie
        for value in (token, token.removeprefix("pgs_")):
            r = await c.get(f"/api/lines/{ANNA_LINE}/usage", params={param: value})
            assert r.status_code == 401
            r = await c.get("/auth/me", params={param: value})
            assert r.status_code == 401
    # The query is never written to the access log.
    assert token not in portal.decisions.getvalue()


@pytest.mark.parametrize(
    "value",
    ["Bearer pgs_", "Bearer pgs_x", "Bearer pgs_" + "A" * 43 + "!", "Bearer pgs_" + "A" * 20000,
     "Bearer pgs_" + "../../etc/passwd", "Bearer pgs_%00%00", "Bearer  pgs_" + "A" * 43,
     "bearer pgs_" + "A" * 43, "Bearer pgs_" + "A" * 43 + " extra", "Bearer", "Bearer ", "Basic YW5uYTpwdw==",
     "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbm5hIn0.", "Bearer pgs_\u00e4\u00f6\u00fc" + "A" * 43],
)
async def test_garbage_bearer_is_401_never_500(portal: Portal, value: str) -> None:
    data = (f"GET /api/lines/{ANNA_LINE}/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {value}\r\n"
            "Connection: close\r\n\r\n").encode("latin-1")
    r = await raw_one(portal.url, data)
    assert r is not None and r.status in (400, 401), (value[:40], r.status, r.body)
    for path in ("/auth/me",):
        data = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {value}\r\nConnection: close\r\n\r\n"
                ).encode("latin-1")
        r = await raw_one(portal.url, data)
        assert r is not None and r.status in (400, 401), (path, value[:40], r.status, r.body)


async def test_cookie_and_bearer_of_two_accounts_never_mix(portal: Portal) -> None:
    async with portal.client() as c:
        anna = await login_anna(c)
    async with portal.client() as c:
        markus = await register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
        markus_token = markus["Authorization"].removeprefix("Bearer pgs_")
    async with portal.client() as c:
        both = {**anna, "Cookie": f"{COOKIE}={markus_token}"}
        # Bearer wins everywhere, consistently: /api and /auth agree on who is asking.
        r = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=both)
        assert r.status_code == 200
        asked = r.json()["asked_by"]
        r = await c.get("/api/lines/436641000010/usage", headers=both)
        assert r.status_code == 404
        me = (await c.get("/auth/me", headers=both)).json()
        assert me["subject"] == asked["subject"] and me["bound_customer"] == "1000001"
        # A non-bearer Authorization next to a valid cookie: /api and /auth must agree too
        # (the authenticator ignored the cookie, /auth/* used it: two parsers, two answers).
        odd = {"Authorization": "Basic YW5uYTpwdw==", "Cookie": f"{COOKIE}={markus_token}"}
        api = await c.get("/api/lines/436641000010/usage", headers=odd)
        me_r = await c.get("/auth/me", headers=odd)
        assert (api.status_code == 200) == (me_r.status_code == 200), (api.status_code, me_r.status_code)
        # Two cookies of two accounts: never a mix of both.
        anna_token = anna["Authorization"].removeprefix("Bearer pgs_")
        two = {"Cookie": f"{COOKIE}={anna_token}; {COOKIE}={markus_token}"}
        r1 = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=two)
        r2 = await c.get("/api/lines/436641000010/usage", headers=two)
        assert not (r1.status_code == 200 and r2.status_code == 200)
        me2 = await c.get("/auth/me", headers=two)
        if r1.status_code == 200:
            assert me2.json()["bound_customer"] == "1000001"
        if r2.status_code == 200:
            assert me2.json()["bound_customer"] == "1000010"
        # Logout with both ends only the bearer's session (the one that was asking).
        await c.post("/auth/logout", headers=both, json={})
        assert (await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=anna)).status_code == 401
        assert (await c.get("/api/lines/436641000010/usage", headers=markus)).status_code == 200


@pytest.mark.parametrize(
    "others",
    [
        'x={"a":1}',  # a consent banner's JSON cookie: SimpleCookie dropped the whole header on it
        "theme=dark mode",
        "bare-word",
        "q=\"unterminated",
        "a=1,b=2",
    ],
)
async def test_an_odd_cookie_beside_the_session_is_the_same_person_on_api_and_auth(
    portal: Portal, others: str
) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
    token = h["Authorization"].removeprefix("Bearer pgs_")
    cookie = {"Cookie": f"{others}; {COOKIE}={token}; other=1"}
    async with portal.client() as c:
        api = await c.get(f"/api/lines/{ANNA_LINE}/usage", headers=cookie)
        me = await c.get("/auth/me", headers=cookie)
    assert api.status_code == 200, api.text
    assert me.status_code == 200, me.text
    assert api.json()["asked_by"] is not None and me.json()["login"] == "anna.huber@example.at"
