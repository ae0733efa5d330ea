"""Stage 2: who is asking. Runs the authenticator chain over a `Credentials` value.

The first authenticator that returns a Principal wins; one that raises
AuthenticationFailed ends the chain (a bad credential is never ignored in favour
of anonymity). All None means anonymous.
"""

from __future__ import annotations

from collections.abc import Sequence
from http.cookies import CookieError, SimpleCookie

from starlette.types import Scope

from gateway.auth.base import Authenticator, Credentials
from gateway.middleware.canonicalize import CanonicalRequest
from gateway.principal import Principal

__all__ = ["AuthenticationStage", "credentials_from_scope"]


def _cookies(raw: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def credentials_from_scope(scope: Scope, request: CanonicalRequest) -> Credentials:
    authorization: str | None = None
    cookie = ""
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookie = (cookie + "; " if cookie else "") + value.decode("latin-1")
    return Credentials(
        authorization=authorization,
        cookies=_cookies(cookie) if cookie else {},
        client_ip=request.client_ip,
        method=request.method,
        path=request.path,
    )


class AuthenticationStage:
    id = "authenticate"

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        ids = [a.id for a in authenticators]
        if len(set(ids)) != len(ids):
            raise ValueError(f"authenticators listed twice: {ids}")
        self.authenticators = tuple(authenticators)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        for authenticator in self.authenticators:
            principal = await authenticator.authenticate(credentials)
            if principal is not None:
                return principal
        return None
