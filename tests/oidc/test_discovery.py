"""Discovery: cached, an unreachable provider is a clear error and readiness retries."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.auth.oidc.config import OidcSettings, ProviderSettings, validate_oidc_settings
from gateway.auth.oidc.discovery import Discovery
from gateway.auth.oidc.errors import ProviderUnavailable
from gateway.settings import SettingsError

from .gateway_app import TestGateway, build_gateway, free_port
from .helpers import Clock
from .idp import Idp


@pytest.fixture
async def counted() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(timeout=5, event_hooks={"request": [hook]}) as client:
        yield client, seen


async def test_discovery_is_cached(idp: Idp, counted: tuple[httpx.AsyncClient, list[str]]) -> None:
    http, seen = counted
    clock = Clock()
    d = Discovery(idp.issuer, http=http, clock=clock, ttl=3600)
    first = await d.get()
    assert first.token_endpoint == f"{idp.issuer}/token" and "S256" in first.code_challenge_methods
    assert first.backchannel_logout_supported
    await d.get()
    assert len(seen) == 1
    clock.offset = 3601
    await d.get()
    assert len(seen) == 2


async def test_wrong_issuer_in_the_document_is_refused(idp: Idp) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        d = Discovery(
            idp.issuer.replace("127.0.0.1", "localhost"), http=http, clock=Clock(), ttl=60
        )
        with pytest.raises(ProviderUnavailable) as info:
            await d.get()
    assert "issuer mismatch" in (info.value.detail or "")


async def test_unreachable_provider_fails_closed_and_readiness_retries(idp: Idp) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    # Point the component at a provider that is not there.
    gw: TestGateway = build_gateway(
        Idp(dead, idp.process, idp.keys, idp.gateway, idp.log), f"http://127.0.0.1:{free_port()}"
    )
    for hook in gw.component.on_startup:
        await hook()  # logs, does not raise
    name, ok, message = await gw.component.ready_checks[0]()
    assert (name, ok) == ("oidc:customer", False)
    assert "unreachable" in message
    async with httpx.AsyncClient(transport=httpx.ASGITransport(gw.app), base_url=gw.url) as client:
        r = await client.get("/auth/oidc/login")
    assert r.status_code == 503 and r.json()["reason"] == "oidc_provider_unavailable"
    name, ok, message = await gw.component.ready_checks[0]()  # asks again
    assert not ok
    for hook in gw.component.on_shutdown:
        await hook()


async def test_reachable_provider_is_ready(idp: Idp) -> None:
    gw = build_gateway(idp, f"http://127.0.0.1:{free_port()}")
    assert await gw.component.ready_checks[0]() == ("oidc:customer", True, "ok")
    for hook in gw.component.on_shutdown:
        await hook()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"allowed_algorithms": ["HS256"]}, "never accepted"),
        ({"allowed_algorithms": ["none"]}, "never accepted"),
        ({"allowed_algorithms": ["XX1"]}, "unknown algorithm"),
        ({"issuer": "http://idp.example.com"}, "loopback"),
        ({"scopes": ["email"]}, "openid"),
        ({"client_secret": ""}, "client secret"),
    ],
)
def test_bad_provider_settings_stop_the_start(change: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "issuer": "https://idp.example.com",
        "client_id": "c",
        "client_secret": "s",
        **change,
    }
    settings = OidcSettings(enabled=True, providers={"p": ProviderSettings(**values)})  # type: ignore[arg-type]
    with pytest.raises(SettingsError) as info:
        validate_oidc_settings(settings, "gateway.toml")
    assert message in str(info.value) and "oidc.providers.p" in str(info.value)
