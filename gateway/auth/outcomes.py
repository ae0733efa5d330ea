"""The errors auth raises, as `gateway.errors` subclasses (mapped to HTTP in one place).

Every failed secret (wrong, unknown, locked, replayed) raises the same class with
the same reason code, so the answer never says which part was wrong or that a
key is locked. Reason codes (all 401 unless noted):

- ``invalid_credentials``  password login (wrong password, unknown login, locked account)
- ``invalid_code``         TOTP / SMS-TAN (wrong, used, expired, 4th try, locked)
- ``registration_failed``  registration proof (wrong proof, unknown identifier, locked identifier)
- ``session_required``     the endpoint needs a (non-pending) session
- ``login_pending``        a pending password login may only finish with /auth/login/totp
- 403 ``<policy reason>``  the policy refused the registration (with ``hint_url`` for MBS)
- 409 ``login_taken`` / ``already_registered``
- 400 ``password_too_short`` / ``password_is_identifier`` / ``password_too_common`` / ``bad_request``
"""

from __future__ import annotations

from gateway.errors import AuthenticationFailed, BadRequest, Forbidden, GatewayError

__all__ = ["Conflict", "InvalidInput", "RegistrationRefused", "SecretRejected"]


class SecretRejected(AuthenticationFailed):
    """A secret was not accepted (reason says which kind of flow, never why)."""


class InvalidInput(BadRequest):
    """A field is missing or malformed; `field` names it (for the HTML form)."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.field = field


class RegistrationRefused(Forbidden):
    def __init__(self, reason: str, hint_url: str | None = None) -> None:
        super().__init__(reason)
        self.hint_url = hint_url


class Conflict(GatewayError):
    status_code = 409
    error = "conflict"
    reason = "conflict"
