"""`build_oidc`: the OIDC component, wired from settings and the auth component's parts.

What the composition root gets (`OidcComponent`):

* ``authenticators``: ``[OidcSessionGuard, OidcBearerAuthenticator]``. The guard must run
  *before* auth's session authenticator (it ends OIDC sessions whose provider grant
  ran out, refreshing where it can, and never authenticates anyone itself); the
  bearer authenticator takes every ``Bearer`` that is not ``pgs_``.
* ``routes``: the ``/auth/oidc/...`` endpoints (`routes.OidcEndpoints`).
* ``ready_checks``: one per provider, ``("oidc:<name>", ok, message)``; each call
  retries discovery and the JWKS when they failed before.
* ``on_startup``: creates the link table when missing, then tries discovery once
  (an unreachable provider is logged and reported by readiness, not fatal).
* ``on_shutdown``: closes the HTTP client.
* ``providers_for_login_page()`` and ``end_session_url(handle)`` for auth's pages and logout;
  `build_oidc` hands them (and the session guard) to auth's services itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from starlette.routing import BaseRoute

from gateway.auth.base import Authenticator
from gateway.auth.crypto import SecretBox, resolve_encryption_key
from gateway.auth.oidc.adapters import AuthOidcAccounts, AuthOidcSessions
from gateway.auth.oidc.backchannel import BackchannelLogout
from gateway.auth.oidc.bearer import OidcBearerAuthenticator
from gateway.auth.oidc.config import OidcSettings, validate_oidc_settings
from gateway.auth.oidc.errors import ProviderUnavailable
from gateway.auth.oidc.flow import LoginFlow
from gateway.auth.oidc.lifetime import OidcSessionGuard, SessionRecords
from gateway.auth.oidc.links import OidcLinks
from gateway.auth.oidc.ports import OidcAccounts, OidcSessions
from gateway.auth.oidc.provider import OidcProvider, build_providers
from gateway.auth.oidc.routes import OidcEndpoints
from gateway.auth.oidc.state import LoginStates
from gateway.auth.services import AuthServices
from gateway.database import Database
from gateway.settings import Settings
from gateway.store.base import Store

__all__ = ["OidcComponent", "build_oidc", "build_oidc_with", "warn_about_audiences"]

log = logging.getLogger("gateway.auth.oidc")

#: The HKDF purpose of the key that seals provider tokens at rest (not the TOTP seeds' key).
TOKEN_PURPOSE = "oidc-tokens"

ReadyCheck = Callable[[], Awaitable[tuple[str, bool, str]]]


@dataclass
class OidcComponent:
    authenticators: list[Authenticator]
    routes: list[BaseRoute]
    ready_checks: list[ReadyCheck]
    on_startup: list[Callable[[], Awaitable[None]]]
    on_shutdown: list[Callable[[], Awaitable[None]]]
    providers: dict[str, OidcProvider] = field(default_factory=dict)
    endpoints: OidcEndpoints | None = None

    def providers_for_login_page(self) -> list[dict[str, str]]:
        """[{name, display_name, login_url}] of the browser login providers."""
        return self.endpoints.providers_for_login_page() if self.endpoints else []

    async def end_session_url(self, session_handle: str) -> str | None:
        """For auth's logout: the provider's RP-initiated logout URL of this session, if any."""
        return await self.endpoints.end_session_url(session_handle) if self.endpoints else None


def _ready_check(provider: OidcProvider) -> ReadyCheck:
    async def check() -> tuple[str, bool, str]:
        name = f"oidc:{provider.name}"
        try:
            await provider.discovery.get()
            if not provider.jwks.kids:
                await provider.jwks.refresh()
        except ProviderUnavailable as exc:
            return name, False, exc.detail or exc.reason
        return name, True, "ok"

    return check


def warn_about_audiences(oidc: OidcSettings) -> None:
    """An audience equal to the client id is what ID tokens carry: say so at start.

    Such tokens are still refused as bearer tokens (`bearer.refuse_non_access_token`),
    but then the provider's real access tokens must be told apart by ``typ: at+jwt``
    alone, and a provider that does not set it has none left that pass.
    """
    for name, p in oidc.providers.items():
        if p.audience and p.audience == p.client_id:
            log.warning(
                "oidc.providers.%s.audience equals its client_id %r: ID tokens carry that "
                "audience too; give the API its own resource indicator (RFC 8707) as audience",
                name,
                p.client_id,
            )


def build_oidc_with(
    settings: Settings,
    *,
    store: Store,
    accounts: OidcAccounts,
    sessions: OidcSessions,
    clock: Callable[[], float],
    http: httpx.AsyncClient | None = None,
    startup: list[Callable[[], Awaitable[None]]] | None = None,
    box: SecretBox | None = None,
) -> OidcComponent:
    """Build the component over any `OidcAccounts` / `OidcSessions` (tests use fakes);
    `SettingsError` for a bad ``[oidc]`` section."""
    oidc = settings.section(OidcSettings, "oidc")
    validate_oidc_settings(oidc, settings.source)
    if not oidc.enabled:
        return OidcComponent([], [], [], [], [])
    client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(oidc.http_timeout_seconds),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        headers={"user-agent": "portal-gateway-oidc"},
    )
    warn_about_audiences(oidc)
    prefix = settings.store.key_prefix + "oidc:"
    providers = build_providers(oidc, http=client, clock=clock)
    public_url = settings.server.public_url.rstrip("/")
    flow = LoginFlow(
        providers=providers,
        states=LoginStates(store, prefix=prefix + "state:", ttl=oidc.login_timeout_seconds),
        http=client,
        clock=clock,
        redirect_uri=public_url + "/auth/oidc/callback",
        default_next=oidc.default_next,
    )
    # Without a configured key (tests over fakes) the tokens are sealed with a key of
    # this process only; build_oidc always hands in the key of [totp] encryption_key.
    box = box or SecretBox(secrets.token_urlsafe(48), purpose=TOKEN_PURPOSE)
    records = SessionRecords(store, prefix=prefix, ttl=oidc.max_session_seconds + 3600, box=box)
    backchannel = BackchannelLogout(
        providers=providers,
        records=records,
        sessions=sessions,
        store=store,
        prefix=prefix,
        clock=clock,
    )
    endpoints = OidcEndpoints(
        settings=oidc,
        flow=flow,
        accounts=accounts,
        sessions=sessions,
        records=records,
        backchannel=backchannel,
        store=store,
        prefix=prefix,
        public_url=public_url,
        cookie_secure=settings.server.cookie_secure,
        clock=clock,
        box=box,
    )
    guard = OidcSessionGuard(
        records=records, sessions=sessions, providers=providers, http=client, clock=clock
    )
    bearer = OidcBearerAuthenticator(providers, accounts)

    async def warm_up() -> None:
        for provider in providers.values():
            try:
                await provider.discovery.get()
                await provider.jwks.refresh()
            except ProviderUnavailable as exc:
                log.error("oidc provider %s not reachable at start: %s", provider.name, exc.detail)

    async def close() -> None:
        if http is None:
            await client.aclose()

    return OidcComponent(
        authenticators=[guard, bearer],
        routes=endpoints.routes(),
        ready_checks=[_ready_check(p) for p in providers.values()],
        on_startup=[*(startup or []), warm_up],
        on_shutdown=[close],
        providers=providers,
        endpoints=endpoints,
    )


def build_oidc(
    settings: Settings,
    *,
    auth: AuthServices,
    store: Store,
    db: Database,
    clock: Callable[[], float],
    http: httpx.AsyncClient | None = None,
) -> OidcComponent:
    """The OIDC component over the auth component's parts (``AuthComponent.services``)."""
    links = OidcLinks(db, clock=clock)
    key = resolve_encryption_key(
        auth.config.totp.encryption_key,
        demo=auth.config.auth.demo,
        data_dir=settings.path(settings.server.data_dir),
        source=settings.source,
    )
    component = build_oidc_with(
        settings,
        store=store,
        accounts=AuthOidcAccounts(
            accounts=auth.accounts, links=links, registrar=auth.registrar, directory=auth.directory
        ),
        sessions=AuthOidcSessions(
            sessions=auth.sessions, accounts=auth.accounts, cookies=auth.cookies, clock=clock
        ),
        clock=clock,
        http=http,
        startup=[links.ensure_table],
        box=SecretBox(key, purpose=TOKEN_PURPOSE),
    )
    # Auth's own endpoints see OIDC sessions as /api does: the same guard ends them,
    # /auth/logout also ends the provider's session, the login page lists the providers.
    auth.session_guards.extend(
        a for a in component.authenticators if isinstance(a, OidcSessionGuard)
    )
    if component.endpoints is not None:
        auth.logout_hooks.append(component.end_session_url)
    auth.login_providers[:] = component.providers_for_login_page()
    return component
