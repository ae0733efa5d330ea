"""Everything the auth endpoints (and the OIDC part) use, built once by `build_auth`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.auth.accounts import Accounts
from gateway.auth.base import Authenticator, Credentials
from gateway.auth.config import AuthConfig
from gateway.auth.cookies import CookiePolicy, of_request
from gateway.auth.login import Logins
from gateway.auth.origin import CrossSiteCheck
from gateway.auth.passwords import PasswordHashing, PasswordPolicy
from gateway.auth.registration import Registrar
from gateway.auth.regulation import Regulator
from gateway.auth.sessions import Session, Sessions, session_handle, token_from_bearer
from gateway.auth.sms import SmsCodes
from gateway.auth.totp import Totp
from gateway.directory.base import Directory

__all__ = ["AuthServices"]


@dataclass
class AuthServices:
    config: AuthConfig
    accounts: Accounts
    sessions: Sessions
    hashing: PasswordHashing
    password_policy: PasswordPolicy
    totp: Totp
    sms: SmsCodes
    regulator: Regulator
    registrar: Registrar
    logins: Logins
    directory: Directory
    cookies: CookiePolicy
    public_origin: str
    clock: Callable[[], float]
    #: The one cross-site request check (`gateway.auth.origin`), shared with the data plane.
    cross_site: CrossSiteCheck
    #: Filled by the OIDC component (auth knows it only through these three):
    #: checks run before a session is used on /auth (they raise to end it, as on /api),
    session_guards: list[Authenticator] = field(default_factory=list)
    #: called with a session's handle at logout; may answer the provider's logout URL,
    logout_hooks: list[Callable[[str], Awaitable[str | None]]] = field(default_factory=list)
    #: and the login page's buttons: {name, display_name, login_url} per provider.
    login_providers: list[dict[str, str]] = field(default_factory=list)

    def request_token(self, request: Request) -> str | None:
        """The session id a request carries: ``Bearer pgs_...`` first, else the cookie."""
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer":
            return token_from_bearer(value.strip())
        return self.cookies.session_token(request)

    async def request_session(self, request: Request, *, allow_pending: bool = False) -> Session | None:
        token = self.request_token(request)
        if token is None:
            return None
        if self.session_guards:
            credentials = Credentials(
                authorization=request.headers.get("authorization"),
                cookies=of_request(request),
                client_ip=request.client.host if request.client else "unknown",
                method=request.method,
                path=request.url.path,
            )
            for guard in self.session_guards:
                await guard.authenticate(credentials)
        session = await self.sessions.lookup(token)
        if session is None or (session.data.pending and not allow_pending):
            return None
        return session

    async def end_session(self, token: str) -> str | None:
        """Revoke one session after the logout hooks; the provider's logout URL, if any."""
        url = None
        handle = session_handle(token)
        for hook in self.logout_hooks:
            url = await hook(handle) or url
        await self.sessions.revoke(token)
        return url
