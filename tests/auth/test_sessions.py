"""Sessions: random ids, idle and absolute timeouts, rotation, logout everywhere."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.auth.config import SessionSettings
from gateway.auth.sessions import SessionData, Sessions, bearer_token, session_handle, token_from_bearer
from gateway.store.base import Store

from .helpers import Clock

DATA = SessionData(
    subject="acc_1",
    access_level="full",
    methods=("password",),
    account_id="acc_1",
    login="a@example.at",
    role="customer",
    bound_customer="1000001",
)


def make(store: Store, clock: Clock) -> Sessions:
    return Sessions(store, SessionSettings(idle_timeout_seconds=100, absolute_timeout_seconds=300), clock)


async def test_token_is_long_and_random(store: Store, clock: Clock) -> None:
    sessions = make(store, clock)
    tokens = {(await sessions.create(DATA))[0] for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) >= 43 for t in tokens)  # 32 bytes = 256 bit, base64url
    token = next(iter(tokens))
    assert token_from_bearer(bearer_token(token)) == token
    assert token_from_bearer("eyJhbGciOi") is None


async def test_lookup_gives_principal(store: Store, clock: Clock) -> None:
    sessions = make(store, clock)
    token, _ = await sessions.create(DATA)
    session = await sessions.lookup(token)
    assert session is not None
    p = session.principal()
    assert (p.subject, p.access_level, p.role, p.bound_customer) == ("acc_1", "full", "customer", "1000001")
    assert p.session_id == session_handle(token) != token


async def test_idle_timeout(clock: Clock) -> None:
    from gateway.store.memory import MemoryStore

    sessions = make(MemoryStore(clock=clock), clock)
    token, _ = await sessions.create(DATA)
    clock.advance(90)
    assert await sessions.lookup(token) is not None  # touched: idle restarts
    clock.advance(90)
    assert await sessions.lookup(token) is not None
    clock.advance(101)
    assert await sessions.lookup(token) is None


async def test_absolute_timeout(clock: Clock) -> None:
    from gateway.store.memory import MemoryStore

    sessions = make(MemoryStore(clock=clock), clock)
    token, _ = await sessions.create(DATA)
    for _ in range(4):
        clock.advance(70)
        assert await sessions.lookup(token) is not None
    clock.advance(30)
    assert await sessions.lookup(token) is None  # 310 s after login, though used 30 s ago


async def test_rotate_gives_new_id_and_kills_old(store: Store, clock: Clock) -> None:
    sessions = make(store, clock)
    token, _ = await sessions.create(DATA)
    rotated = await sessions.rotate(token, methods=("password", "totp"), second_factor_at=clock())
    assert rotated is not None
    new_token, session = rotated
    assert new_token != token
    assert await sessions.lookup(token) is None
    assert session.data.methods == ("password", "totp")
    assert await sessions.rotate(token) is None  # a second rotation of the old id fails


async def test_revoke_and_revoke_account(store: Store, clock: Clock) -> None:
    sessions = make(store, clock)
    t1, _ = await sessions.create(DATA)
    t2, _ = await sessions.create(DATA)
    await sessions.revoke(t1)
    assert await sessions.lookup(t1) is None
    assert await sessions.lookup(t2) is not None
    await sessions.revoke_account("acc_1")
    assert await sessions.lookup(t2) is None
    t3, _ = await sessions.create(DATA)
    assert await sessions.lookup(t3) is not None


async def test_garbage_tokens_are_refused(store: Store, clock: Clock) -> None:
    sessions = make(store, clock)
    for bad in ["", "x", "a" * 500, "../../etc", "attacker-chosen-session-id-0000000000"]:
        assert await sessions.lookup(bad) is None


def hot(store: Store, clock: Clock, touch: int = 0) -> Sessions:
    """Sessions whose every lookup touches (touch interval 0): the widest race window."""
    return Sessions(store, SessionSettings(touch_interval_seconds=touch), clock)


async def test_a_lookup_in_flight_never_brings_back_a_logged_out_session(store: Store, clock: Clock) -> None:
    """Lookups that read the record before the logout must not write it back after it.

    On Redis each lookup is a read and a touch, two round trips apart; the logout lands
    between them for some of the 60 lookups of each round. The old plain-SET touch
    brought the session back with a fresh TTL."""
    sessions = hot(store, clock)
    for _ in range(15):
        token, session = await sessions.create(DATA)
        before = [asyncio.create_task(sessions.lookup(token)) for _ in range(30)]
        logout = asyncio.create_task(sessions.revoke(token))
        during = [asyncio.create_task(sessions.lookup(token)) for _ in range(30)]
        await logout
        after = [asyncio.create_task(sessions.lookup(token)) for _ in range(10)]
        await asyncio.gather(*before, *during)
        assert await asyncio.gather(*after) == [None] * 10
        assert await sessions.lookup(token) is None
        assert await store.get("sess:" + session.handle) is None


async def test_a_lookup_in_flight_never_brings_back_a_rotated_session(store: Store, clock: Clock) -> None:
    sessions = hot(store, clock)
    for _ in range(15):
        token, session = await sessions.create(DATA)
        before = [asyncio.create_task(sessions.lookup(token)) for _ in range(30)]
        rotation = asyncio.create_task(sessions.rotate(token, methods=("password", "totp")))
        during = [asyncio.create_task(sessions.lookup(token)) for _ in range(30)]
        rotated = await rotation
        assert rotated is not None
        await asyncio.gather(*before, *during)
        assert await sessions.lookup(token) is None  # the old id stays dead
        assert await store.get("sess:" + session.handle) is None
        assert await sessions.lookup(rotated[0]) is not None


async def test_two_lookups_at_touch_time_both_succeed(store: Store, clock: Clock) -> None:
    """A touch that loses its compare-and-set to a parallel touch is no logout."""
    sessions = hot(store, clock)
    token, _ = await sessions.create(DATA)
    clock.advance(10)
    results = await asyncio.gather(*(sessions.lookup(token) for _ in range(20)))
    assert all(r is not None for r in results)


class Counting:
    """A store that records which operations a caller asked for (each is one round trip on Redis)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        async def counted(*args: Any, **kw: Any) -> Any:
            self.calls.append(name)
            return await target(*args, **kw)

        return counted


async def test_a_lookup_is_one_store_read_and_the_touch_is_throttled(store: Store, clock: Clock) -> None:
    counting = Counting(store)
    sessions = Sessions(counting, SessionSettings(touch_interval_seconds=60), clock)  # type: ignore[arg-type]
    token, _ = await sessions.create(DATA)
    await sessions.revoke_account("acc_other")  # an epoch exists in the store (not this account's)
    counting.calls.clear()
    for _ in range(5):
        clock.advance(5)
        assert await sessions.lookup(token) is not None
    assert counting.calls == ["get_with_ref"] * 5  # one read each, no write
    counting.calls.clear()
    clock.advance(60)
    assert await sessions.lookup(token) is not None
    assert counting.calls == ["get_with_ref", "replace_if_equal"]  # the documented touch
    counting.calls.clear()
    await sessions.revoke_account("acc_1")
    assert await sessions.lookup(token) is None  # logout everywhere is seen by the same one read
    assert counting.calls == ["set", "get_with_ref"]
