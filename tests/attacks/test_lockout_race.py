"""A parallel attacker against the lockouts: 50 guesses at once, over real sockets, on the
memory store and on a real Redis. At most `max_failures` (5) guesses may reach the
comparison of the secret; the rest are refused before it (issue: check-then-count let
every parallel guess through, ~1,000 TOTP guesses per ban window instead of 5).

What is counted is the comparison itself (a spy on the verifier: Argon2 for passwords,
the TOTP check, the registration proof check), and afterwards the right secret is
refused too: the lockout a person would notice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from gateway.auth.passwords import PasswordHashing
from gateway.auth.registration import Registrar
from gateway.auth.totp import Totp
from tests.integration.conftest import portal_settings, totp_now
from tests.integration.test_roles import ANNA_TOTP
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_FAILURES = 5
GUESSES = 50
ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}


class Spy:
    """Counts calls of one method on its class (the gateway runs in this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> None:
        self.calls = 0
        original: Callable[..., Any] = getattr(cls, name)
        spy = self

        if asyncio.iscoroutinefunction(original):

            async def counted_async(*args: Any, **kw: Any) -> Any:
                spy.calls += 1
                return await original(*args, **kw)

            monkeypatch.setattr(cls, name, counted_async)
        else:

            def counted(*args: Any, **kw: Any) -> Any:
                spy.calls += 1
                return original(*args, **kw)

            monkeypatch.setattr(cls, name, counted)


@pytest.fixture(params=["memory", "redis"])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    prefix = f"pgtest:{uuid.uuid4().hex}:"
    extra: dict[str, Any] = {"regulation.client_max_failures": 1000}  # the account's lock is under test
    if request.param == "redis":
        probe = aioredis.Redis.from_url(REDIS_URL)
        try:
            await probe.ping()
        except Exception:  # pragma: no cover - the machine has Redis; CI starts it
            pytest.skip("redis not reachable")
        extra |= {"store.backend": "redis", "store.url": REDIS_URL, "store.key_prefix": prefix}
    port = free_port()
    settings = portal_settings(tmp_path, port, f"http://127.0.0.1:{free_port()}", **extra)
    app = build_app(settings, registry=CollectorRegistry())
    try:
        async with serve_asgi(app, port_override=port) as url:
            yield url
    finally:
        if request.param == "redis":
            async for key in probe.scan_iter(match=prefix + "*"):
                await probe.delete(key)
            await probe.aclose()


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=GUESSES))


def wrong_codes(secret: str, n: int) -> list[str]:
    """`n` six-digit codes none of which is valid in the window around now."""
    import time

    valid = {totp_now(secret, time.time() + d) for d in range(-90, 91, 30)}
    return [c for c in (f"{i:06d}" for i in range(n + len(valid))) if c not in valid][:n]


async def test_parallel_password_guesses_reach_argon2_at_most_max_failures_times(
    gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified = Spy(monkeypatch, PasswordHashing, "_verify")
    async with client(gateway) as c:
        answers = await asyncio.gather(
            *(
                c.post("/auth/login/password", json={**ANNA, "password": f"wrong-guess-{i:03d}"})
                for i in range(GUESSES)
            )
        )
        assert [r.status_code for r in answers] == [401] * GUESSES
        assert verified.calls <= MAX_FAILURES
        r = await c.post("/auth/login/password", json=ANNA)
        assert r.status_code == 401  # the right password, after the burst: locked
    assert verified.calls <= MAX_FAILURES  # ... and not even hashed


async def test_parallel_totp_guesses_after_a_leaked_password(
    gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = Spy(monkeypatch, Totp, "verify")
    async with client(gateway) as c:
        r = await c.post("/auth/login/password", json=ANNA)  # the attacker knows the password
        assert r.status_code == 200 and r.json()["next"] == "totp"
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        answers = await asyncio.gather(
            *(
                c.post("/auth/login/totp", json={"code": code}, headers=pending)
                for code in wrong_codes(ANNA_TOTP, GUESSES)
            )
        )
        assert [r.status_code for r in answers] == [401] * GUESSES
        assert checked.calls <= MAX_FAILURES
        r = await c.post("/auth/login/totp", json={"code": totp_now(ANNA_TOTP)}, headers=pending)
        assert r.status_code == 401  # even the right code: the account is locked


async def test_parallel_step_up_guesses(gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(gateway) as c:
        r = await c.post("/auth/login/password", json=ANNA)
        pending = {"Authorization": "Bearer " + r.json()["token"]}
        r = await c.post("/auth/login/totp", json={"code": totp_now(ANNA_TOTP)}, headers=pending)
        assert r.status_code == 200, r.text
        session = {"Authorization": "Bearer " + r.json()["token"]}
        checked = Spy(monkeypatch, Totp, "verify")  # a stolen session, now guessing for step-up
        answers = await asyncio.gather(
            *(
                c.post("/auth/step-up", json={"method": "totp", "code": code}, headers=session)
                for code in wrong_codes(ANNA_TOTP, GUESSES)
            )
        )
        assert [r.status_code for r in answers] == [401] * GUESSES
        assert checked.calls <= MAX_FAILURES


PROOFS = {
    # proof type: (identifier, a wrong proof of the right shape, the right proof); one
    # identifier each, so the three attacks run on one gateway without sharing a lock.
    "puk": ("436641000020", "2020{:04d}", "20202020"),
    "invoice_number": ("436641000030", "RE-2026-9{:05d}", "RE-2026-110030"),
    "kundenkennwort": ("1000010", "Mayr-KG-Falsch-{:03d}", "Mayr-KG-Kennwort"),
}


async def test_parallel_registration_proof_guesses(gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PUK, invoice number and Kundenkennwort, each guessed 50 times at once."""

    def attempt(proof_type: str, i: int, proof: str) -> dict[str, str]:
        return {
            "login": f"guesser-{proof_type}-{i}@example.at",
            "identifier": PROOFS[proof_type][0],
            "proof_type": proof_type,
            "proof": proof,
            "password": "ein-langes-Passwort-2026",
        }

    async with client(gateway) as c:
        for proof_type, (_, wrong, right) in sorted(PROOFS.items()):
            checked = Spy(monkeypatch, Registrar, "_proof_holds")
            answers = await asyncio.gather(
                *(
                    c.post("/auth/register", json=attempt(proof_type, i, wrong.format(i + 1)))
                    for i in range(GUESSES)
                )
            )
            assert all(r.status_code == 401 for r in answers), (proof_type, {r.status_code for r in answers})
            assert checked.calls <= MAX_FAILURES, proof_type
            r = await c.post("/auth/register", json=attempt(proof_type, 999, right))
            assert r.status_code == 401, proof_type  # the right proof after the burst: locked
            monkeypatch.undo()


async def test_a_lines_puk_has_one_count_under_every_name(gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sophie's PUK guessed at once as her line (436641000020) and as her customer number
    (1000021, whose only line it is): one secret, so one count of 5 for both names."""

    def attempt(identifier: str, i: int, proof: str) -> dict[str, str]:
        return {"login": f"alias-{i}@example.at", "identifier": identifier, "proof_type": "puk",
                "proof": proof, "password": "ein-langes-Passwort-2026"}

    checked = Spy(monkeypatch, Registrar, "_proof_holds")
    async with client(gateway) as c:
        answers = await asyncio.gather(*(
            c.post("/auth/register", json=attempt("436641000020" if i % 2 else "1000021", i, f"2020{i + 1:04d}"))
            for i in range(GUESSES)
        ))
        assert [r.status_code for r in answers] == [401] * GUESSES
        assert checked.calls <= MAX_FAILURES
        # The right PUK under the other name is refused like any guess: no 403 that says it was right.
        for identifier in ("1000021", "436641000020"):
            r = await c.post("/auth/register", json=attempt(identifier, 999, "20202020"))
            assert r.status_code == 401, (identifier, r.status_code, r.text)


async def test_parallel_registrations_with_the_right_puk_make_one_account(gateway: str) -> None:
    """Five registrations at once with Thomas's right PUK (as many as may be in flight: each
    holds a reserved attempt): one account for his line, four 409 `already_registered` (the
    database refuses the second account of a line and role)."""
    async with client(gateway) as c:
        answers = await asyncio.gather(*(
            c.post("/auth/register", json={"login": f"thomas-{i}@example.at", "identifier": "436641000030",
                                           "proof_type": "puk", "proof": "30303030",
                                           "password": "ein-langes-Passwort-2026"})
            for i in range(MAX_FAILURES)
        ))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201] + [409] * (MAX_FAILURES - 1), [(r.status_code, r.text[:120]) for r in answers]
        assert {r.json()["reason"] for r in answers if r.status_code == 409} == {"already_registered"}
