"""One configured provider at run time: its settings, discovery, keys and token checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gateway.auth.oidc.config import OidcSettings, ProviderSettings
from gateway.auth.oidc.discovery import Discovery
from gateway.auth.oidc.jwks import JwksCache
from gateway.auth.oidc.tokens import TokenVerifier

__all__ = ["OidcProvider", "build_providers"]


@dataclass(frozen=True, slots=True)
class OidcProvider:
    name: str
    settings: ProviderSettings
    discovery: Discovery
    jwks: JwksCache
    verifier: TokenVerifier

    @property
    def display_name(self) -> str:
        return self.settings.display_name or self.name


def build_providers(
    settings: OidcSettings, *, http: httpx.AsyncClient, clock: Callable[[], float]
) -> dict[str, OidcProvider]:
    providers: dict[str, OidcProvider] = {}
    for name, p in settings.providers.items():
        discovery = Discovery(p.issuer, http=http, clock=clock, ttl=settings.discovery_ttl_seconds)

        async def jwks_uri(d: Discovery = discovery) -> str:
            return (await d.get()).jwks_uri

        jwks = JwksCache(
            jwks_uri,
            http=http,
            clock=clock,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            max_age_seconds=settings.jwks_max_age_seconds,
        )
        verifier = TokenVerifier(
            issuer=p.issuer,
            jwks=jwks,
            algorithms=p.allowed_algorithms,
            clock=clock,
            leeway=settings.leeway_seconds,
        )
        providers[name] = OidcProvider(name, p, discovery, jwks, verifier)
    return providers
