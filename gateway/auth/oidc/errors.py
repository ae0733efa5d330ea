"""Why an OIDC step failed: reason codes, mapped to HTTP by the gateway's error tree.

The reason goes to the client and the log; the detail only to the log. Neither
ever contains a token, a code or a secret.
"""

from __future__ import annotations

from gateway.errors import AuthenticationFailed, BadRequest, ServiceUnavailable

__all__ = ["OidcLoginFailed", "ProviderUnavailable", "TokenRejected"]


class TokenRejected(AuthenticationFailed):
    """A JWT (access, ID or logout token) failed validation."""

    reason = "oidc_token_invalid"


class OidcLoginFailed(BadRequest):
    """The browser's login round trip cannot be completed (state, code, claims)."""

    reason = "oidc_login_failed"


class ProviderUnavailable(ServiceUnavailable):
    """The provider's discovery document, JWKS or token endpoint did not answer."""

    reason = "oidc_provider_unavailable"
