"""Regulation: per identifier, per account, per client address; against memory and a real Redis."""

from __future__ import annotations

import json
import logging
import re

import httpx
from prometheus_client import CollectorRegistry

from gateway.auth.component import build_auth
from gateway.auth.config import RegulationSettings
from gateway.auth.regulation import Regulator

from .conftest import auth_settings, make_app
from .helpers import PASSWORD, register


async def test_lock_arithmetic(store, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.auth.regulation")
    registry = CollectorRegistry()
    reg = Regulator(store, RegulationSettings(max_failures=3, client_max_failures=100), registry)
    assert not await reg.locked("proof", "1000001")
    outcomes = []
    for _ in range(4):
        attempt = await reg.reserve("proof", "1000001", client_ip="10.0.0.1")
        outcomes.append((attempt.allowed, await reg.fail(attempt)))
    # Three attempts are evaluated; the third failure locks; the fourth is refused unevaluated.
    assert outcomes == [(True, False), (True, False), (True, True), (False, True)]
    assert await reg.locked("proof", "1000001")
    assert not await reg.locked("proof", "1000010")
    assert registry.get_sample_value("portal_gateway_auth_lockouts_total", {"kind": "proof"}) == 1
    assert len([r for r in caplog.records if "lockout" in r.getMessage()]) == 1


async def test_client_address_is_locked_across_identifiers(
    tmp_path, clock, db, demo_directory, authorizer
) -> None:
    from gateway.store.memory import MemoryStore

    settings = auth_settings(tmp_path, regulation={"client_max_failures": 8})
    component = build_auth(
        settings,
        store=MemoryStore(clock=clock),
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    transport = httpx.ASGITransport(app=make_app(component), client=("203.0.113.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await register(client)).status_code == 201
        client.cookies.clear()
        for i in range(8):  # different logins: no single account reaches 5
            await client.post(
                "/auth/login/password", json={"login": f"user{i}", "password": "wrong-password-1"}
            )
        r = await client.post(
            "/auth/login/password", json={"login": "sophie@example.at", "password": PASSWORD}
        )
        assert r.status_code == 401  # the address is locked: same answer as a wrong password
    other = httpx.ASGITransport(app=make_app(component), client=("203.0.113.10", 1234))
    async with httpx.AsyncClient(transport=other, base_url="https://testserver") as client:
        r = await client.post(
            "/auth/login/password", json={"login": "sophie@example.at", "password": PASSWORD}
        )
        assert r.status_code == 200


async def test_whole_flow_on_redis(tmp_path, clock, db, demo_directory, authorizer, redis_store) -> None:
    """Registration, login, TOTP and a replay, with every short-lived state in a real Redis."""
    component = build_auth(
        auth_settings(tmp_path),
        store=redis_store,
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    assert component.services is not None
    transport = httpx.ASGITransport(app=make_app(component))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        token = (await register(client)).json()["token"]
        client.cookies.clear()
        h = {"Authorization": f"Bearer {token}"}
        secret = (await client.post("/auth/totp/enroll", headers=h)).json()["secret"]
        code = component.services.totp.code_at(secret, clock())
        lines = [json.loads(x) for x in (tmp_path / "sms-outbox.jsonl").read_text().splitlines()]
        sms_code = re.findall(r"\b\d{6}\b", lines[-1]["text"])[0]  # the enrolment's proof of the line
        confirm = {"code": code, "sms_code": sms_code}
        assert (await client.post("/auth/totp/confirm", json=confirm, headers=h)).status_code == 200
        client.cookies.clear()
        pending = (
            await client.post(
                "/auth/login/password", json={"login": "sophie@example.at", "password": PASSWORD}
            )
        ).json()["token"]
        client.cookies.clear()
        r = await client.post(
            "/auth/login/totp", json={"code": code}, headers={"Authorization": f"Bearer {pending}"}
        )
        assert r.status_code == 401  # the step was used by the confirmation
        clock.advance(30)
        code = component.services.totp.code_at(secret, clock())
        r = await client.post(
            "/auth/login/totp", json={"code": code}, headers={"Authorization": f"Bearer {pending}"}
        )
        assert r.status_code == 200, r.text
        assert (
            await client.get("/auth/me", headers={"Authorization": f"Bearer {r.json()['token']}"})
        ).status_code == 200


async def test_a_dependency_failing_after_the_reservation_gives_it_back(store) -> None:
    """A short outage (directory, database) after `reserve` must not count as attempts: without
    the give-back, three 503s here would lock the identifier for everybody."""
    reg = Regulator(store, RegulationSettings(max_failures=3, client_max_failures=100), CollectorRegistry())

    class Outage(Exception):
        pass

    for _ in range(5):
        try:
            async with reg.reserved("proof", "1000010", client_ip="10.0.0.9"):
                raise Outage
        except Outage:
            pass
    async with reg.reserved("proof", "1000010", client_ip="10.0.0.9") as attempt:
        assert attempt.allowed and attempt.count == 1
        await reg.succeed(attempt)
    # A settled attempt is not given back: a wrong secret followed by an error still counts.
    for _ in range(3):
        try:
            async with reg.reserved("proof", "1000020") as attempt:
                await reg.fail(attempt)
                raise Outage
        except Outage:
            pass
    assert await reg.locked("proof", "1000020")
