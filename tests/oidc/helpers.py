"""Small fakes and builders shared by the OIDC tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from gateway.auth.base import Credentials
from gateway.auth.oidc.config import OidcSettings, ProviderSettings
from gateway.auth.oidc.ports import LinkRequest
from gateway.auth.oidc.provider import OidcProvider, build_providers
from gateway.principal import Principal

from .idp import RESOURCE, Idp


class Clock:
    """Real time plus an offset the test can move."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class FakeAccounts:
    links: dict[tuple[str, str], Principal] = field(default_factory=dict)
    link_requests: list[LinkRequest] = field(default_factory=list)

    async def principal_for_subject(
        self, issuer: str, subject: str, *, provider: str, auth_methods: frozenset[str]
    ) -> Principal | None:
        return self.links.get((issuer, subject))

    async def link(self, request: LinkRequest) -> str:
        self.link_requests.append(request)
        raise NotImplementedError


def provider_settings(idp: Idp, **overrides: object) -> ProviderSettings:
    values: dict[str, object] = {
        "issuer": idp.issuer,
        "client_id": "portal-web",
        "client_secret": "portal-web-secret",
        "audience": RESOURCE,
        "allowed_algorithms": ["RS256"],
        "scopes": ["openid", "email", "profile", "phone"],
        "display_name": "Test IdP",
    }
    values.update(overrides)
    return ProviderSettings(**values)  # type: ignore[arg-type]


def make_providers(
    idp: Idp, http: httpx.AsyncClient, clock: Clock, **overrides: object
) -> dict[str, OidcProvider]:
    settings = OidcSettings(enabled=True, providers={"idp": provider_settings(idp, **overrides)})
    return build_providers(settings, http=http, clock=clock)


def bearer(token: str) -> Credentials:
    return Credentials(
        authorization=f"Bearer {token}",
        cookies={},
        client_ip="127.0.0.1",
        method="GET",
        path="/api/x",
    )


ANNA = Principal(
    subject="acc_anna",
    login="anna.huber@example.at",
    access_level="full",
    auth_methods=frozenset({"password"}),
    role="customer",
    bound_customer="1000001",
)


async def _browser_origin(request: httpx.Request) -> None:
    """Like a browser: a POST carries the Origin of the page it was sent from (here: the
    origin it goes to, as a same-origin page's form or fetch would)."""
    if request.method == "POST" and "origin" not in request.headers:
        request.headers["origin"] = f"{request.url.scheme}://{request.url.netloc.decode()}"


def browser_client(**kw: object) -> httpx.AsyncClient:
    """An httpx client that behaves like a browser where the gateway looks (Origin on POST)."""
    return httpx.AsyncClient(
        follow_redirects=False, timeout=15, event_hooks={"request": [_browser_origin]}, **kw  # type: ignore[arg-type]
    )
