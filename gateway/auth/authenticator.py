"""The session authenticator: ``__Host-`` cookie or ``Authorization: Bearer pgs_...``.

Oathkeeper's rule: no credential of ours → None (a bearer without the ``pgs_``
prefix is an OIDC JWT, someone else's); a credential of ours that is unknown,
expired, revoked or still pending its TOTP code → `AuthenticationFailed`.
"""

from __future__ import annotations

from gateway.auth.base import Credentials
from gateway.auth.sessions import Sessions, token_from_bearer
from gateway.errors import AuthenticationFailed, ServiceUnavailable
from gateway.principal import Principal
from gateway.store.base import StoreUnavailable

__all__ = ["SessionAuthenticator"]


class SessionAuthenticator:
    id = "session"

    def __init__(self, sessions: Sessions, cookie_name: str, public_origin: str = "") -> None:
        self._sessions = sessions
        self.cookie_name = cookie_name
        #: The origin the cookie's unsafe requests must come from (`gateway.auth.origin`).
        self.public_origin = public_origin

    def validate(self) -> None:
        if not self.cookie_name:
            raise ValueError("session authenticator needs a cookie name")

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        # The same rule as `AuthServices.request_token` (the /auth endpoints): a Bearer
        # decides alone; any other Authorization scheme (e.g. Basic from a front proxy)
        # is not ours and leaves the cookie in charge. Two rules would let /api and
        # /auth/* see different people on one request.
        token: str | None = None
        scheme, _, value = (credentials.authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            token = token_from_bearer(value.strip())
        else:
            token = credentials.cookies.get(self.cookie_name) or None
        if token is None:
            return None
        try:
            session = await self._sessions.lookup(token)
        except StoreUnavailable as exc:
            raise ServiceUnavailable("dependency_unavailable", "session store does not answer") from exc
        if session is None:
            raise AuthenticationFailed("session_invalid")
        if session.data.pending:
            raise AuthenticationFailed("login_pending")
        return session.principal()
