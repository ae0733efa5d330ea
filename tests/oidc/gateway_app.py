"""A small gateway for the OIDC tests: the OIDC component over real sessions, served by uvicorn.

The lead's gateway/app.py wires the same component; here only what OIDC touches is
built (memory store, auth's real `Sessions`, accounts faked by `LinkingAccounts`),
so these tests do not depend on the rest of the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploy.ports import free_port  # noqa: F401 - re-exported for the OIDC tests
from gateway.auth.authenticator import SessionAuthenticator
from gateway.auth.base import Credentials
from gateway.auth.config import SessionSettings
from gateway.auth.oidc.component import OidcComponent, build_oidc_with
from gateway.auth.oidc.ports import ExistingLink, IssuedSession, LinkRequest, LoggedInAccount
from gateway.auth.sessions import SessionData, Sessions, session_handle, token_from_bearer
from gateway.errors import AuthenticationFailed, GatewayError
from gateway.principal import Principal
from gateway.settings import ServerSettings, Settings, StoreSettings
from gateway.store.memory import MemoryStore
from tests.servers.gateway import serve_uvicorn

from .helpers import Clock
from .idp import RESOURCE, Idp

COOKIE = "pg_session"




@dataclass
class LinkingAccounts:
    """Accounts linked by (issuer, subject); the proof check is the demo's Kundenkennwort."""

    links: dict[tuple[str, str], Principal] = field(default_factory=dict)
    requests: list[LinkRequest] = field(default_factory=list)

    async def principal_for_subject(
        self, issuer: str, subject: str, *, provider: str, auth_methods: frozenset[str]
    ) -> Principal | None:
        p = self.links.get((issuer, subject))
        if p is None:
            return None
        return Principal(
            subject=p.subject,
            login=p.login,
            access_level=p.access_level,
            auth_methods=auth_methods,
            role=p.role,
            bound_customer=p.bound_customer,
            provider=provider,
        )

    async def link(self, request: LinkRequest) -> str:
        self.requests.append(request)
        if (request.identifier, request.proof_type, request.proof) != (
            "1000001",
            "kundenkennwort",
            "Huber-Kennwort-1",
        ):
            raise AuthenticationFailed("registration_failed")
        account = Principal(
            subject=f"acc_{request.subject}",
            login=request.login_hint,
            access_level="full",
            role="customer",
            bound_customer="1000001",
        )
        self.links[(request.issuer, request.subject)] = account
        return account.subject


    async def link_existing(self, request: ExistingLink) -> None:
        raise AssertionError("these tests never link to an existing account")


class RealSessions:
    """`OidcSessions` over auth's `Sessions` (without the accounts table)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def create(
        self, principal: Principal, *, client_ip: str, max_lifetime: float
    ) -> IssuedSession:
        token, session = await self.sessions.create(
            SessionData(
                subject=principal.subject,
                access_level=principal.access_level,
                methods=("oidc",),
                account_id=principal.subject,
                login=principal.login,
                role=principal.role,
                bound_customer=principal.bound_customer,
                provider=principal.provider,
            )
        )

        def set_cookie(response: Response) -> None:
            response.set_cookie(COOKIE, token, path="/", httponly=True, samesite="lax")

        return IssuedSession(handle=session.handle, set_cookie=set_cookie)

    async def end_handle(self, handle: str) -> None:
        await self.sessions.revoke_handle(handle)

    async def logged_in_account(self, credentials: Credentials) -> LoggedInAccount | None:
        return None  # no password logins in this small gateway

    def session_handle(self, credentials: Credentials) -> str | None:
        if credentials.authorization:
            _, _, value = credentials.authorization.partition(" ")
            token = token_from_bearer(value.strip())
        else:
            token = credentials.cookies.get(COOKIE)
        return session_handle(token) if token else None

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/")


@dataclass
class TestGateway:
    __test__ = False

    url: str
    app: Starlette
    component: OidcComponent
    accounts: LinkingAccounts
    sessions: Sessions
    store: MemoryStore
    clock: Clock
    server: uvicorn.Server | None = None
    task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(serve_uvicorn(self.server))
        for _ in range(200):
            if self.server.started:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("gateway did not start")

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task


def oidc_settings(idp: Idp, gateway_url: str, **extra: Any) -> Settings:
    provider = {
        "issuer": idp.issuer,
        "client_id": "portal-web",
        "client_secret": "portal-web-secret",
        "audience": RESOURCE,
        "allowed_algorithms": ["RS256"],
        "display_name": "Kunden-IdP",
        "scopes": ["openid", "email", "profile", "phone"],
    }
    section: dict[str, Any] = {"enabled": True, "providers": {"customer": provider}, **extra}
    return Settings(
        server=ServerSettings(public_url=gateway_url, cookie_secure=False),
        store=StoreSettings(key_prefix="t:"),
        extra={"oidc": section},
    )


def build_gateway(
    idp: Idp, gateway_url: str, *, clock: Clock | None = None, **extra: Any
) -> TestGateway:
    clock = clock or Clock()
    store = MemoryStore(clock=clock)
    sessions = Sessions(store, SessionSettings(), clock)
    accounts = LinkingAccounts()
    component = build_oidc_with(
        oidc_settings(idp, gateway_url, **extra),
        store=store,
        accounts=accounts,
        sessions=RealSessions(sessions),
        clock=clock,
    )
    chain = [*component.authenticators, SessionAuthenticator(sessions, COOKIE)]

    async def whoami(request: Request) -> Response:
        creds = Credentials(
            authorization=request.headers.get("authorization"),
            cookies=request.cookies,
            client_ip="127.0.0.1",
            method=request.method,
            path=request.url.path,
        )
        for authenticator in chain:
            principal = await authenticator.authenticate(creds)
            if principal is not None:
                return JSONResponse(
                    {
                        "subject": principal.subject,
                        "kind": principal.kind,
                        "methods": sorted(principal.auth_methods),
                        "scopes": sorted(principal.scopes),
                        "role": principal.role,
                        "bound_customer": principal.bound_customer,
                    }
                )
        return JSONResponse({"subject": None}, status_code=401)

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return JSONResponse({"error": exc.error, "reason": exc.reason}, status_code=exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in component.on_startup:
            await hook()
        yield
        for hook in component.on_shutdown:
            await hook()

    app = Starlette(
        routes=[*component.routes, Route("/whoami", whoami)],
        exception_handlers={GatewayError: on_error},
        lifespan=lifespan,
    )
    return TestGateway(gateway_url, app, component, accounts, sessions, store, clock)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "fields": {}})
        elif tag in ("input", "select") and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def forms_of(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


async def browser_login(
    client: httpx.AsyncClient,
    gateway_url: str,
    login: str,
    password: str,
    *,
    next_path: str = "/whoami",
    stop_at_callback: bool = False,
) -> httpx.Response:
    """Go through the provider's pages like a browser; returns the gateway's callback answer
    (or, with `stop_at_callback`, the provider's redirect to the callback, not followed)."""
    response = await client.get(f"{gateway_url}/auth/oidc/login", params={"next": next_path})
    for _ in range(20):
        if response.status_code in (302, 303):
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(f"{gateway_url}/auth/oidc/callback"):
                if stop_at_callback:
                    return response
                return await client.get(target)
            response = await client.get(target)
            continue
        assert response.status_code == 200, response.text
        forms = forms_of(response.text)
        assert forms, response.text
        form = forms[0]
        fields = dict(form["fields"])
        if fields.get("prompt") == "login":
            fields.update(login=login, password=password)
        response = await client.post(urljoin(str(response.url), form["action"]), data=fields)
    raise AssertionError("login did not come back to the gateway")


def location(response: httpx.Response) -> str:
    return response.headers.get("location", "")


def query_value(url: str, name: str) -> str:
    match = re.search(rf"[?&]{name}=([^&]+)", url)
    assert match, url
    return match.group(1)


Factory = Callable[..., TestGateway]
