"""TOTP enrolment (secret, otpauth URI, SVG QR), step-up, and used steps across replicas."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gateway.auth.config import TotpSettings
from gateway.auth.totp import Totp
from gateway.principal import Principal

from .helpers import PASSWORD, bearer, register


async def registered(env) -> str:
    token = (await register(env.client)).json()["token"]
    env.client.cookies.clear()
    return token


async def test_enrolment_returns_secret_uri_and_svg_then_confirm_activates(env) -> None:
    token = await registered(env)
    r = await env.client.post("/auth/totp/enroll", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    secret = body["secret"]
    assert len(secret) >= 32  # 160 bit, base32
    uri = urlsplit(body["uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    q = parse_qs(uri.query)
    assert q["secret"] == [secret] and "issuer" in q
    assert body["qr_svg"].lstrip().startswith("<svg") and "<title>" in body["qr_svg"]
    bad = await env.client.post("/auth/totp/confirm", json={"code": "000000"}, headers=bearer(token))
    assert bad.status_code == 401
    ok = await env.client.post(
        "/auth/totp/confirm",
        json={"code": env.totp_now(secret), "sms_code": env.last_sms("436641000020")},
        headers=bearer(token),
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["totp"] == "active"
    assert ok.json()["token"] != token  # a second factor was given: new session id
    assert (await env.client.get("/auth/me", headers=bearer(token))).status_code == 401
    # the next password login is pending until the code
    login = await env.client.post(
        "/auth/login/password", json={"login": "sophie@example.at", "password": PASSWORD}
    )
    assert login.json()["status"] == "pending"


async def test_enrolment_needs_a_session(env) -> None:
    assert (await env.client.post("/auth/totp/enroll")).status_code == 401


async def _with_totp(env) -> tuple[str, str]:
    token = await registered(env)
    secret = (await env.client.post("/auth/totp/enroll", headers=bearer(token))).json()["secret"]
    r = await env.client.post(
        "/auth/totp/confirm",
        json={"code": env.totp_now(secret), "sms_code": env.last_sms("436641000020")},
        headers=bearer(token),
    )
    env.client.cookies.clear()
    env.clock.advance(60)
    return r.json()["token"], secret


async def test_step_up_with_totp_rotates_and_lasts_ten_minutes(env) -> None:
    token, secret = await _with_totp(env)
    env.clock.advance(11 * 60)
    assert (await env.client.get("/auth/me", headers=bearer(token))).json()["second_factor_fresh"] is False
    r = await env.client.post(
        "/auth/step-up", json={"method": "totp", "code": env.totp_now(secret)}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    new = r.json()["token"]
    assert new != token
    assert (await env.client.get("/auth/me", headers=bearer(token))).status_code == 401
    me = (await env.client.get("/auth/me", headers=bearer(new))).json()
    assert me["second_factor_fresh"] is True
    env.clock.advance(9 * 60)
    assert (await env.client.get("/auth/me", headers=bearer(new))).json()["second_factor_fresh"] is True
    env.clock.advance(61)
    assert (await env.client.get("/auth/me", headers=bearer(new))).json()["second_factor_fresh"] is False


async def test_step_up_with_wrong_or_replayed_code_fails(env) -> None:
    token, secret = await _with_totp(env)
    code = env.totp_now(secret)
    r = await env.client.post("/auth/step-up", json={"method": "totp", "code": code}, headers=bearer(token))
    token = r.json()["token"]
    again = await env.client.post(
        "/auth/step-up", json={"method": "totp", "code": code}, headers=bearer(token)
    )
    assert again.status_code == 401 and again.json()["reason"] == "invalid_code"


async def test_step_up_with_sms_to_own_line(env) -> None:
    token = await registered(env)
    await env.client.post("/auth/sms/send", json={"msisdn": "436641000020"})
    r = await env.client.post(
        "/auth/step-up", json={"method": "sms", "code": env.last_sms("436641000020")}, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    assert "sms_tan" in r.json()["session"]["auth_methods"]
    assert r.json()["session"]["second_factor_fresh"] is True


async def test_step_up_sms_to_a_foreign_line_fails(env) -> None:
    token = await registered(env)
    await env.client.post("/auth/sms/send", json={"msisdn": "436641000040"})
    r = await env.client.post(
        "/auth/step-up",
        json={"method": "sms", "msisdn": "436641000040", "code": env.last_sms("436641000040")},
        headers=bearer(token),
    )
    assert r.status_code == 401


def test_principal_step_up_window() -> None:
    p = Principal(subject="acc_x", second_factor_at=1000.0)
    assert p.step_up_fresh(1600.0) and not p.step_up_fresh(1600.1)


async def test_used_step_is_refused_on_another_replica(redis_store, clock) -> None:
    from gateway.store.redis_store import RedisStore

    replica_b = RedisStore.from_url("redis://127.0.0.1:6379/0", prefix=redis_store._prefix)
    a = Totp(redis_store, TotpSettings(), clock)
    b = Totp(replica_b, TotpSettings(), clock)
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    code = a.code_at(secret, clock())
    try:
        assert await a.verify("acc_1", secret, code) is True
        assert await b.verify("acc_1", secret, code) is False
        assert await b.verify("acc_2", secret, code) is True  # per account
    finally:
        await replica_b.close()
