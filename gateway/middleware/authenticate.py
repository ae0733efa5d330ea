"""Stage 2: who is asking. Runs the authenticator chain over a `Credentials` value.

The first authenticator that returns a Principal wins; one that raises
AuthenticationFailed ends the chain (a bad credential is never ignored in favour
of anonymity). All None means anonymous.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Scope

from gateway.auth import cookies
from gateway.auth.base import Authenticator, Credentials
from gateway.middleware.canonicalize import CanonicalRequest
from gateway.principal import Principal

__all__ = ["AuthenticationStage", "credentials_from_scope"]


def credentials_from_scope(scope: Scope, request: CanonicalRequest) -> Credentials:
    authorization: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
    # The one cookie parser of the gateway: /auth reads cookies through it as well, so
    # a request is the same person on /api and on /auth (issue: SimpleCookie dropped
    # the whole header on one odd cookie).
    return Credentials(
        authorization=authorization,
        cookies=cookies.of_headers(scope["headers"]),
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
