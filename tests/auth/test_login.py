"""Password login, pending TOTP, TOTP rules, lockouts, sessions over HTTP."""

from __future__ import annotations

import pytest

from gateway.auth.seed import seed_demo_accounts

from .helpers import PASSWORD, bearer, register

ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}
SECRET = "JBSWY3DPEHPK3PXP"


@pytest.fixture
async def anna(env):
    assert await seed_demo_accounts(env.db, services=env.services) == ["anna.huber@example.at"]
    assert await seed_demo_accounts(env.db, services=env.services) == []  # idempotent
    return env


async def login(env, **body):
    return await env.client.post("/auth/login/password", json=body)


async def test_password_login_without_totp_gives_session_cookie_and_bearer(env) -> None:
    await register(env.client)
    env.client.cookies.clear()
    r = await login(env, login="Sophie@Example.at", password=PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["session"]["auth_methods"] == ["password"]
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-pg_session=")
    for attr in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert attr.lower() in cookie.lower()
    assert "domain" not in cookie.lower()
    token = body["token"]
    assert token.startswith("pgs_") and len(token) >= 4 + 43
    assert (await env.client.get("/api/whoami")).json()["subject"].startswith("acc_")  # cookie
    env.client.cookies.clear()
    assert (await env.client.get("/api/whoami", headers=bearer(token))).status_code == 200


async def test_pending_login_can_only_finish_with_totp(anna) -> None:
    env = anna
    r = await login(env, **ANNA)
    assert r.status_code == 200
    assert r.json()["status"] == "pending" and r.json()["next"] == "totp"
    pending = r.json()["token"]
    env.client.cookies.clear()
    assert (await env.client.get("/api/whoami", headers=bearer(pending))).json()["error"] == "login_pending"
    assert (await env.client.get("/auth/me", headers=bearer(pending))).status_code == 401
    r = await env.client.post(
        "/auth/login/totp", json={"code": env.totp_now(SECRET)}, headers=bearer(pending)
    )
    assert r.status_code == 200, r.text
    full = r.json()["token"]
    assert full != pending
    assert sorted(r.json()["session"]["auth_methods"]) == ["password", "totp"]
    assert r.json()["session"]["second_factor_fresh"] is True
    assert (await env.client.get("/api/whoami", headers=bearer(pending))).status_code == 401
    env.client.cookies.clear()
    assert (await env.client.get("/api/whoami", headers=bearer(full))).status_code == 200


async def _pending(env) -> str:
    r = await login(env, **ANNA)
    env.client.cookies.clear()
    return r.json()["token"]


async def test_replayed_totp_code_is_refused(anna) -> None:
    env = anna
    code = env.totp_now(SECRET)
    first = await env.client.post(
        "/auth/login/totp", json={"code": code}, headers=bearer(await _pending(env))
    )
    assert first.status_code == 200
    env.clock.advance(10)  # same 30 s step
    again = await env.client.post(
        "/auth/login/totp", json={"code": code}, headers=bearer(await _pending(env))
    )
    assert again.status_code == 401
    assert again.json()["reason"] == "invalid_code"


@pytest.mark.parametrize(("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)])
async def test_totp_window_is_one_step(anna, offset: int, accepted: bool) -> None:
    env = anna
    r = await env.client.post(
        "/auth/login/totp", json={"code": env.totp_now(SECRET, offset)}, headers=bearer(await _pending(env))
    )
    assert (r.status_code == 200) is accepted


async def test_malformed_totp_codes_fail_the_same(anna) -> None:
    env = anna
    for code in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        r = await env.client.post(
            "/auth/login/totp", json={"code": code or "x"}, headers=bearer(await _pending(env))
        )
        assert r.status_code == 401 and r.json()["reason"] == "invalid_code"


async def test_sixth_password_is_refused_even_when_right_then_lock_ends(env, caplog) -> None:
    await register(env.client)
    env.client.cookies.clear()
    wrong = [await login(env, login="sophie@example.at", password="wrong-password-123") for _ in range(5)]
    assert {r.status_code for r in wrong} == {401}
    right = await login(env, login="sophie@example.at", password=PASSWORD)
    assert right.status_code == 401
    assert right.json()["reason"] == wrong[0].json()["reason"] == "invalid_credentials"
    assert right.json()["message"] == wrong[0].json()["message"]
    assert env.metric("portal_gateway_auth_lockouts_total", kind="account") == 1
    assert PASSWORD not in caplog.text
    env.clock.advance(15 * 60 + 1)
    assert (await login(env, login="sophie@example.at", password=PASSWORD)).status_code == 200


async def test_unknown_login_answers_like_wrong_password(env) -> None:
    await register(env.client)
    a = await login(env, login="sophie@example.at", password="wrong-password-123")
    b = await login(env, login="nobody@example.at", password="wrong-password-123")
    assert a.status_code == b.status_code == 401
    assert a.json()["message"] == b.json()["message"]


async def test_totp_failures_are_counted_and_lock(anna) -> None:
    env = anna
    for _ in range(5):
        r = await env.client.post(
            "/auth/login/totp", json={"code": "000000"}, headers=bearer(await _pending(env))
        )
        assert r.status_code == 401
    # locked now: the right code, and even the right password + code, fail the same way
    r = await login(env, **ANNA)
    assert r.status_code == 401
    assert env.metric("portal_gateway_auth_failures_total", kind="account") >= 5


async def test_login_with_fixed_session_id_gets_a_new_one(env) -> None:
    await register(env.client)
    env.client.cookies.clear()
    fixed = "attacker-chosen-session-id-AAAAAAAAAAAAAAAAAAAAAAA"
    planted = {"Cookie": f"__Host-pg_session={fixed}"}
    r = await env.client.post(
        "/auth/login/password", json={"login": "sophie@example.at", "password": PASSWORD}, headers=planted
    )
    assert r.status_code == 200
    env.client.cookies.clear()
    issued = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert issued != fixed
    assert (
        await env.client.get("/auth/me", headers=planted)
    ).status_code == 401  # the fixed id is worth nothing
    # a valid earlier session is replaced by the login, not reused
    again = await env.client.post(
        "/auth/login/password",
        json={"login": "sophie@example.at", "password": PASSWORD},
        headers={"Cookie": f"__Host-pg_session={issued}"},
    )
    env.client.cookies.clear()
    newer = again.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert newer != issued
    assert (
        await env.client.get("/auth/me", headers={"Cookie": f"__Host-pg_session={issued}"})
    ).status_code == 401
    assert (
        await env.client.get("/auth/me", headers={"Cookie": f"__Host-pg_session={newer}"})
    ).status_code == 200


async def test_idle_and_absolute_timeouts_over_http(env) -> None:
    token = (await register(env.client)).json()["token"]
    env.client.cookies.clear()
    env.clock.advance(29 * 60)
    assert (await env.client.get("/auth/me", headers=bearer(token))).status_code == 200
    env.clock.advance(31 * 60)
    assert (await env.client.get("/auth/me", headers=bearer(token))).status_code == 401


async def test_logout_ends_session_for_cookie_and_bearer(env) -> None:
    r = await register(env.client)
    token = r.json()["token"]
    out = await env.client.post("/auth/logout", headers=bearer(token))
    assert out.status_code == 200
    assert "max-age=0" in out.headers["set-cookie"].lower() or "expires" in out.headers["set-cookie"].lower()
    assert (await env.client.get("/auth/me", headers=bearer(token))).status_code == 401
    env.client.cookies.clear()
    assert (
        await env.client.get("/auth/me", headers={"Cookie": f"__Host-pg_session={token[4:]}"})
    ).status_code == 401


async def test_logout_everywhere(env) -> None:
    await register(env.client)
    env.client.cookies.clear()
    t1 = (await login(env, login="sophie@example.at", password=PASSWORD)).json()["token"]
    env.client.cookies.clear()
    t2 = (await login(env, login="sophie@example.at", password=PASSWORD)).json()["token"]
    env.client.cookies.clear()
    r = await env.client.post("/auth/logout", json={"everywhere": True}, headers=bearer(t1))
    assert r.json()["everywhere"] is True
    assert (await env.client.get("/auth/me", headers=bearer(t2))).status_code == 401
    t3 = (await login(env, login="sophie@example.at", password=PASSWORD)).json()["token"]
    env.client.cookies.clear()
    assert (await env.client.get("/auth/me", headers=bearer(t3))).status_code == 200


async def test_me_describes_the_session(env) -> None:
    token = (await register(env.client)).json()["token"]
    env.client.cookies.clear()
    me = (await env.client.get("/auth/me", headers=bearer(token))).json()
    assert me["login"] == "sophie@example.at"
    assert me["role"] == "business_member" and me["bound_msisdn"] == "436641000020"
    assert me["second_factor_fresh"] is False and me["totp_enabled"] is False
    assert "token" not in me


async def test_non_pgs_bearer_is_not_ours(env) -> None:
    r = await env.client.get("/api/whoami", headers=bearer("eyJhbGciOiJFZERTQSJ9.x.y"))
    assert r.json()["error"] == "anonymous"
    r = await env.client.get("/api/whoami", headers=bearer("pgs_" + "A" * 43))
    assert r.json()["error"] == "session_invalid"
