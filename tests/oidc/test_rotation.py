"""Signing keys against the real provider: rotation works without a restart, a withdrawn key
stops being trusted after the JWKS TTL, and forged tokens with random kids neither delay a
real rotation nor turn the gateway into a load generator against the provider."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.auth.oidc.bearer import OidcBearerAuthenticator
from gateway.auth.oidc.config import OidcSettings
from gateway.auth.oidc.errors import TokenRejected
from gateway.auth.oidc.jwks import REMEMBERED_KIDS, JwksCache, max_age_of
from gateway.auth.oidc.provider import OidcProvider, build_providers

from .helpers import ANNA, Clock, FakeAccounts, bearer, provider_settings
from .idp import Idp, new_key, start_idp


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:  # its own provider: these tests change the keys
    provider = start_idp(tmp_path)
    yield provider
    provider.stop()


@pytest.fixture
async def counted() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(timeout=5, event_hooks={"request": [hook]}) as client:
        yield client, seen


def providers(idp: Idp, http: httpx.AsyncClient, clock: Clock, **oidc: float) -> dict[str, OidcProvider]:
    settings = OidcSettings(enabled=True, providers={"idp": provider_settings(idp)}, **oidc)  # type: ignore[arg-type]
    return build_providers(settings, http=http, clock=clock)


async def accepted(auth: OidcBearerAuthenticator, token: str) -> bool:
    try:
        return await auth.authenticate(bearer(token)) is not None
    except TokenRejected as exc:
        assert exc.reason == "oidc_token_unknown_key", exc.reason
        return False


async def test_a_withdrawn_key_stops_being_trusted_after_the_ttl(
    idp: Idp, counted: tuple[httpx.AsyncClient, list[str]]
) -> None:
    http, seen = counted
    clock = Clock()
    auth = OidcBearerAuthenticator(
        providers(idp, http, clock, jwks_max_age_seconds=120),
        FakeAccounts(links={(idp.issuer, "anna"): ANNA}),
    )
    old = idp.keys[0]
    assert await accepted(auth, idp.mint({"sub": "anna"}, key=old))

    # The provider rotates after a compromise: the new key signs, the old one is withdrawn.
    idp.set_keys(new_key("k2"))
    assert await accepted(auth, idp.client_credentials())  # the new kid: one refetch, at once
    assert seen.count("/jwks") == 2
    assert not await accepted(auth, idp.mint({"sub": "anna"}, key=old))

    # Without a new kid to prompt a refetch, the TTL alone retires a withdrawn key.
    idp.set_keys(new_key("k3"), idp.keys[0])
    assert await accepted(auth, idp.mint({"sub": "anna"}, key=idp.keys[0]))
    k3 = idp.keys[0]
    idp.set_keys(new_key("k4"))  # k3 withdrawn
    assert await accepted(auth, idp.mint({"sub": "anna"}, key=k3))  # cached: within the TTL
    clock.offset = 121
    assert not await accepted(auth, idp.mint({"sub": "anna"}, key=k3))
    assert await accepted(auth, idp.client_credentials())


async def test_the_providers_cache_control_shortens_the_ttl(
    tmp_path: Path, counted: tuple[httpx.AsyncClient, list[str]]
) -> None:
    idp = start_idp(tmp_path, jwks_max_age=30)
    try:
        http, seen = counted
        clock = Clock()
        auth = OidcBearerAuthenticator(
            providers(idp, http, clock, jwks_max_age_seconds=3600),
            FakeAccounts(links={(idp.issuer, "anna"): ANNA}),
        )
        old = idp.keys[0]
        assert await accepted(auth, idp.mint({"sub": "anna"}, key=old))
        idp.set_keys(new_key("k2"))
        clock.offset = 29
        assert await accepted(auth, idp.mint({"sub": "anna"}, key=old))
        assert seen.count("/jwks") == 1
        clock.offset = 31  # max-age=30 from the provider, not the configured hour
        assert not await accepted(auth, idp.mint({"sub": "anna"}, key=old))
        assert seen.count("/jwks") == 2
    finally:
        idp.stop()


async def test_random_kids_do_not_delay_a_real_rotation(
    idp: Idp, counted: tuple[httpx.AsyncClient, list[str]]
) -> None:
    http, seen = counted
    clock = Clock()
    built = providers(idp, http, clock, jwks_min_refresh_seconds=60)
    auth = OidcBearerAuthenticator(built, FakeAccounts(links={(idp.issuer, "anna"): ANNA}))
    assert await accepted(auth, idp.client_credentials())
    fetches = seen.count("/jwks")

    # A flood of forged tokens, each naming a kid of its own (made-up keys).
    forged = [idp.mint({"sub": "anna"}, key=new_key(f"evil-{i}")) for i in range(8)]
    for token in forged:
        assert not await accepted(auth, token)
    # The same forged kids again: each may refetch only once a minute.
    for token in forged:
        assert not await accepted(auth, token)
    assert seen.count("/jwks") == fetches + len(forged)
    # Concurrent forged kids share the fetch that is running (single flight).
    before = seen.count("/jwks")
    many = [idp.mint({"sub": "anna"}, key=new_key(f"burst-{i}")) for i in range(20)]
    results = await asyncio.gather(*(accepted(auth, t) for t in many))
    assert not any(results)
    assert seen.count("/jwks") - before <= 3

    # Right after the flood, the provider really rotates: the new kid works at once.
    idp.set_keys(new_key("k-real"), idp.keys[0])
    assert await accepted(auth, idp.client_credentials())


async def test_unknown_kid_memory_is_bounded() -> None:
    doc = {"keys": [new_key("k1").as_dict(private=False)]}
    fetched: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        fetched.append(1)
        return httpx.Response(200, content=json.dumps(doc), headers={"content-type": "application/json"})

    async def uri() -> str:
        return "http://idp.test/jwks"

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        cache = JwksCache(uri, http=http, clock=Clock(), min_refresh_seconds=60)
        assert await cache.key("k1") is not None
        for i in range(REMEMBERED_KIDS * 3):
            assert await cache.key(f"random-{i}") is None
        assert len(cache._unknown) == REMEMBERED_KIDS
        assert await cache.key("x" * 10_000) is None  # absurd kids never fetch
        assert len(fetched) == 1 + REMEMBERED_KIDS * 3


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 300.0),
        ("public, max-age=60", 60.0),
        ("max-age=86400", 300.0),
        ("no-store", 5.0),
        ("max-age=0", 5.0),
        ("private", 300.0),
    ],
)
def test_cache_control_is_honoured_and_capped(header: str | None, expected: float) -> None:
    assert max_age_of(header, 300.0) == expected
