"""SMS-TAN: codes and limits exactly as docs/domain.md, and the senders (outbox, real HTTP provider)."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from deploy.ports import free_port
from gateway.auth.sms_senders import HttpSmsSender, OutboxSender
from gateway.errors import ServiceUnavailable

from .helpers import bearer

LUKAS = "436641000040"


async def send(env, msisdn=LUKAS):
    return await env.client.post("/auth/sms/send", json={"msisdn": msisdn})


async def verify(env, code, msisdn=LUKAS):
    return await env.client.post("/auth/sms/verify", json={"msisdn": msisdn, "code": code})


async def test_same_answer_for_known_and_unknown_numbers(env) -> None:
    known = await send(env)
    unknown = await send(env, "436649999999")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert env.sms_count(LUKAS) == 1 and env.sms_count("436649999999") == 0


async def test_code_is_six_digits_and_login_is_restricted_to_the_line(env) -> None:
    await send(env, "+43 664 1000040")
    code = env.last_sms(LUKAS)
    assert len(code) == 6 and code.isdigit()
    r = await verify(env, code)
    assert r.status_code == 200, r.text
    session = r.json()["session"]
    assert session["access_level"] == "restricted"
    assert (session["role"], session["bound_msisdn"], session["subject"]) == (
        "line_user",
        LUKAS,
        "line:" + LUKAS,
    )
    assert session["auth_methods"] == ["sms_tan"]
    who = await env.client.get("/api/whoami", headers=bearer(r.json()["token"]))
    assert who.json()["access_level"] == "restricted"


async def test_holder_sms_login_is_restricted_too(env) -> None:
    await send(env, "436641000001")  # Anna's own line
    r = await verify(env, env.last_sms("436641000001"), "436641000001")
    assert r.json()["session"]["access_level"] == "restricted"


async def test_fourth_try_fails_even_with_the_right_code(env) -> None:
    await send(env)
    code = env.last_sms(LUKAS)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        assert (await verify(env, wrong)).status_code == 401
    r = await verify(env, code)
    assert r.status_code == 401 and r.json()["reason"] == "invalid_code"


async def test_code_is_single_use(env) -> None:
    await send(env)
    code = env.last_sms(LUKAS)
    assert (await verify(env, code)).status_code == 200
    assert (await verify(env, code)).status_code == 401


async def test_code_expires_after_five_minutes(env) -> None:
    await send(env)
    code = env.last_sms(LUKAS)
    env.clock.advance(301)
    assert (await verify(env, code)).status_code == 401


async def test_no_resend_before_30_seconds(env) -> None:
    await send(env)
    env.clock.advance(29)
    await send(env)
    assert env.sms_count(LUKAS) == 1
    env.clock.advance(2)
    await send(env)
    assert env.sms_count(LUKAS) == 2
    # the newest code counts; the old one is replaced
    assert (await verify(env, env.last_sms(LUKAS))).status_code == 200


async def test_at_most_five_per_number_per_hour(env) -> None:
    for _ in range(7):
        assert (await send(env)).status_code == 202
        env.clock.advance(31)
    assert env.sms_count(LUKAS) == 5
    env.clock.advance(3600)
    await send(env)
    assert env.sms_count(LUKAS) == 6


async def test_wrong_codes_are_counted_by_the_regulator(env) -> None:
    await send(env)
    await verify(env, "000001")
    assert env.metric("portal_gateway_auth_failures_total", kind="sms") == 1


async def test_outbox_sender_writes_json_lines(tmp_path) -> None:
    sender = OutboxSender(tmp_path / "sub" / "outbox.jsonl", clock=lambda: 5.0)
    await sender.send("436641000040", "Code 123456")
    await sender.send("436641000041", "Code 654321")
    lines = [json.loads(x) for x in (tmp_path / "sub" / "outbox.jsonl").read_text().splitlines()]
    assert lines == [
        {"to": "436641000040", "text": "Code 123456", "at": 5.0},
        {"to": "436641000041", "text": "Code 654321", "at": 5.0},
    ]


# ------------------------------------------------------------- the HTTP sender against a real server
@asynccontextmanager
async def provider(statuses: list[int]):
    """A real SMS provider on 127.0.0.1:<free port> answering `statuses` in turn (then 200)."""
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append({"auth": request.headers.get("Authorization"), "body": await request.json()})
        status = statuses.pop(0) if statuses else 200
        return web.json_response({"ok": status < 400}, status=status)

    app = web.Application()
    app.router.add_post("/sms", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/sms", seen
    finally:
        await runner.cleanup()


async def test_http_sender_posts_with_api_key() -> None:
    async with provider([]) as (url, seen):
        sender = HttpSmsSender(url, "key-123", timeout=2)
        await sender.send("436641000040", "Code 123456")
        await sender.close()
    assert seen == [{"auth": "Bearer key-123", "body": {"to": "436641000040", "text": "Code 123456"}}]


async def test_http_sender_retries_5xx_with_backoff() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with provider([503, 502]) as (url, seen):
        sender = HttpSmsSender(url, "k", retries=2, backoff=0.5, sleep=fake_sleep)
        await sender.send("436641000040", "x")
        await sender.close()
    assert len(seen) == 3
    assert sleeps == [0.5, 1.0]


async def test_http_sender_gives_up_after_retries_with_503() -> None:
    async with provider([500, 500, 500, 500]) as (url, seen):
        sender = HttpSmsSender(url, "k", retries=2, backoff=0.01)
        with pytest.raises(ServiceUnavailable) as exc:
            await sender.send("436641000040", "x")
        await sender.close()
    assert len(seen) == 3 and exc.value.status_code == 503


async def test_http_sender_does_not_retry_4xx() -> None:
    async with provider([401]) as (url, seen):
        sender = HttpSmsSender(url, "bad", retries=2, backoff=0.01)
        with pytest.raises(ServiceUnavailable):
            await sender.send("436641000040", "x")
        await sender.close()
    assert len(seen) == 1




async def test_provider_down_gives_503_to_the_client(tmp_path, clock, db, demo_directory, authorizer) -> None:
    import httpx
    from prometheus_client import CollectorRegistry

    from gateway.auth.component import build_auth
    from gateway.store.memory import MemoryStore

    from .conftest import auth_settings, make_app

    settings = auth_settings(
        tmp_path,
        sms={
            "sender": "http",
            "url": f"http://127.0.0.1:{free_port()}/sms",
            "api_key": "k",
            "retries": 1,
            "backoff_seconds": 0.01,
            "timeout_seconds": 1.0,
            "outbox_path": "",
        },
    )
    component = build_auth(
        settings,
        store=MemoryStore(clock=clock),
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    transport = httpx.ASGITransport(app=make_app(component))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        r = await client.post("/auth/sms/send", json={"msisdn": LUKAS})
        assert r.status_code == 503
        assert r.json()["reason"] == "sms_unavailable"
        # an unknown number still answers 202: nothing is sent for it
        assert (await client.post("/auth/sms/send", json={"msisdn": "436649999999"})).status_code == 202
    for close in component.on_shutdown:
        await close()
    await asyncio.sleep(0)


def test_http_sender_needs_url_and_key(tmp_path) -> None:
    from gateway.auth.component import build_sms_sender
    from gateway.auth.config import load_auth_config
    from gateway.settings import SettingsError

    from .conftest import auth_settings

    settings = auth_settings(tmp_path, sms={"sender": "http"})
    with pytest.raises(SettingsError, match="sms.url"):
        build_sms_sender(settings, load_auth_config(settings), lambda: 0.0)
