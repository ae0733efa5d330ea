"""Everything the auth endpoints (and the OIDC part) use, built once by `build_auth`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from gateway.auth.accounts import Accounts
from gateway.auth.config import AuthConfig
from gateway.auth.cookies import CookiePolicy
from gateway.auth.login import Logins
from gateway.auth.passwords import PasswordHashing, PasswordPolicy
from gateway.auth.registration import Registrar
from gateway.auth.regulation import Regulator
from gateway.auth.sessions import Session, Sessions, token_from_bearer
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
        session = await self.sessions.lookup(token)
        if session is None or (session.data.pending and not allow_pending):
            return None
        return session
