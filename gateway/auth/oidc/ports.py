"""What OIDC needs from the auth component, as small protocols.

Why protocols and not imports: sessions and accounts belong to the auth
component; OIDC only asks it to (a) find the account linked to an (issuer,
subject), (b) link an unknown subject after the registration proof and
(c) open / end gateway sessions. `gateway.auth.oidc.adapters` implements these
over the auth component's real classes; tests can use small fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.responses import Response

from gateway.auth.base import Credentials
from gateway.principal import Principal

__all__ = ["IssuedSession", "LinkRequest", "OidcAccounts", "OidcSessions"]


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """An unknown (issuer, subject) giving the registration proof of DOMAIN.md section 1."""

    provider: str
    issuer: str
    subject: str
    identifier: str
    proof_type: str
    proof: str
    client_ip: str
    #: Shown as the account's login when free (the mapped e-mail claim), else a generated one.
    login_hint: str | None = None


class OidcAccounts(Protocol):
    async def principal_for_subject(
        self, issuer: str, subject: str, *, provider: str, auth_methods: frozenset[str]
    ) -> Principal | None:
        """The linked account as a Principal, None when (issuer, subject) is not linked."""
        ...

    async def link(self, request: LinkRequest) -> str:
        """Check the proof (regulated, policy's can_register) and bind a new account to
        (issuer, subject); return the account id. Raises the auth component's errors
        (AuthenticationFailed, Forbidden with a reason) when the proof does not hold."""
        ...


@dataclass(frozen=True, slots=True)
class IssuedSession:
    #: The session's non-secret handle (sha256 of its id), as in `Principal.session_id`.
    handle: str
    #: Writes the session cookie (name, flags) onto a response.
    set_cookie: Callable[[Response], None]


class OidcSessions(Protocol):
    async def create(
        self, principal: Principal, *, client_ip: str, max_lifetime: float
    ) -> IssuedSession:
        """Open a full gateway session for `principal` that ends at the latest after `max_lifetime`."""
        ...

    async def end_handle(self, handle: str) -> None:
        """End the session with this handle (no error when already gone)."""
        ...

    def session_handle(self, credentials: Credentials) -> str | None:
        """The handle of the session a request presents (cookie or pgs_ bearer), unchecked."""
        ...

    def clear_cookie(self, response: Response) -> None: ...
