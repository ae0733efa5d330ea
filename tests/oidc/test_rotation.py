"""Key rotation at the provider works without a restart; unknown kids refetch at most once a minute."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.auth.oidc.bearer import OidcBearerAuthenticator
from gateway.auth.oidc.errors import TokenRejected

from .helpers import ANNA, Clock, FakeAccounts, bearer, make_providers
from .idp import Idp, new_key, start_idp


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[Idp]:  # its own provider: this test changes the keys
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


async def test_token_signed_by_a_rotated_key(
    idp: Idp, counted: tuple[httpx.AsyncClient, list[str]]
) -> None:
    http, seen = counted
    clock = Clock()
    auth = OidcBearerAuthenticator(
        make_providers(idp, http, clock), FakeAccounts(links={(idp.issuer, "anna"): ANNA})
    )

    assert await auth.authenticate(bearer(idp.client_credentials())) is not None
    assert seen.count("/jwks") == 1

    # The provider rotates: a new key signs, the old one is still published.
    old = idp.keys[0]
    idp.set_keys(new_key("k2"), old)
    token = idp.client_credentials()
    principal = await auth.authenticate(bearer(token))
    assert principal is not None and principal.subject == "client:portal-api"
    assert seen.count("/jwks") == 2  # the unknown kid made exactly one refetch

    # Tokens of the old key keep working while it is published.
    assert await auth.authenticate(bearer(idp.mint({"sub": "anna"}, key=old))) is not None

    # A made-up kid: refused, and no further refetch within the minute.
    for i in range(5):
        with pytest.raises(TokenRejected) as info:
            await auth.authenticate(bearer(idp.mint({"sub": "anna"}, key=new_key(f"evil-{i}"))))
        assert info.value.reason == "oidc_token_unknown_key"
    assert seen.count("/jwks") == 2

    # The old key is retired; after a minute the next unknown kid refetches and the
    # retired key's tokens stop working.
    idp.set_keys(idp.keys[0])
    clock.offset = 61
    with pytest.raises(TokenRejected):
        await auth.authenticate(bearer(idp.mint({"sub": "anna"}, key=new_key("evil-x"))))
    assert seen.count("/jwks") == 3
    with pytest.raises(TokenRejected) as info:
        await auth.authenticate(bearer(idp.mint({"sub": "anna"}, key=old)))
    assert info.value.reason == "oidc_token_unknown_key"
