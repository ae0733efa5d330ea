"""What OIDC needs from the auth component, as small protocols.

Why protocols and not imports: sessions and accounts belong to the auth
component; OIDC only asks it to (a) find the account linked to an (issuer,
subject), (b) link an unknown subject: to a NEW account after the registration proof,
or to the account this browser is logged in to with that account's own login,
and (c) open / end gateway sessions. `gateway.auth.oidc.adapters` implements these
over the auth component's real classes; tests can use small fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.responses import Response

from gateway.auth.base import Credentials
from gateway.principal import Principal

__all__ = [
    "ExistingLink",
    "IssuedSession",
    "LinkRequest",
    "LoggedInAccount",
    "OidcAccounts",
    "OidcSessions",
]


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """An unknown (issuer, subject) giving the registration proof of docs/domain.md section 1."""

    provider: str
    issuer: str
    subject: str
    identifier: str
    proof_type: str
    proof: str
    client_ip: str
    #: Shown as the account's login when free (the mapped e-mail claim), else a generated one.
    login_hint: str | None = None


@dataclass(frozen=True, slots=True)
class ExistingLink:
    """An unknown (issuer, subject) linked to the account the same browser is logged in to."""

    provider: str
    issuer: str
    subject: str
    account_id: str


@dataclass(frozen=True, slots=True)
class LoggedInAccount:
    """The account a browser is logged in to with its own login (password and, when
    enrolled, its second factor): the only proof that may link to an existing account."""

    account_id: str
    login: str | None


class OidcAccounts(Protocol):
    async def principal_for_subject(
        self, issuer: str, subject: str, *, provider: str, auth_methods: frozenset[str]
    ) -> Principal | None:
        """The linked account as a Principal, None when (issuer, subject) is not linked."""
        ...

    async def link(self, request: LinkRequest) -> str:
        """Check the proof (regulated, policy's can_register) and bind a new account to
        (issuer, subject); return the account id. Raises the auth component's errors
        (AuthenticationFailed, Forbidden with a reason) when the proof does not hold,
        409 ``already_registered`` when the proof names a line that has its account."""
        ...

    async def link_existing(self, request: ExistingLink) -> None:
        """Link (issuer, subject) to an existing account; 409 when the subject is linked."""
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

    async def logged_in_account(self, credentials: Credentials) -> LoggedInAccount | None:
        """The account of the request's session when that session is the account's own
        login (password and, when the account has TOTP, a second factor); else None."""
        ...

    def session_handle(self, credentials: Credentials) -> str | None:
        """The handle of the session a request presents (cookie or pgs_ bearer), unchecked."""
        ...

    def clear_cookie(self, response: Response) -> None: ...
