"""Sessions: random ids, idle and absolute timeouts, rotation, logout everywhere."""

from __future__ import annotations

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
