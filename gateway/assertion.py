"""The mutate stage: who is asking, stated to the backend in headers it can trust.

The identity headers are informative; `X-Portal-Assertion` is the proof: a
short-lived JWT signed with the gateway's key, bound to the upstream (``aud``),
the method (``htm``) and the exact forwarded path (``htu``), so a captured
assertion is useless for another backend, another request or after a minute.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable
from typing import Any

from joserfc import jwt

from gateway.keys import KeyStore
from gateway.principal import Principal

__all__ = ["AssertionSigner", "identity_headers"]


class AssertionSigner:
    def __init__(self, keys: KeyStore, *, issuer: str, ttl_seconds: int, clock: Callable[[], float]) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl_seconds
        self.clock = clock

    def sign(
        self,
        principal: Principal,
        *,
        audience: str,
        method: str,
        path: str,
        request_id: str,
        parts: frozenset[str] | None = None,
    ) -> str:
        key = self.keys.current
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": principal.subject,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(12),
            "acl": principal.access_level,
            "amr": sorted(principal.auth_methods),
            "rid": request_id,
            "htm": method,
            "htu": path,
        }
        if principal.kind == "service":
            claims["client"] = True
        if parts is not None:
            claims["parts"] = sorted(parts)
        with warnings.catch_warnings():
            # joserfc flags "EdDSA" as superseded by RFC 9864's "Ed25519"; backends
            # still expect "EdDSA" (it is what every JOSE library verifies today).
            warnings.simplefilter("ignore")
            return jwt.encode(
                {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"},
                claims,
                key.key,
                algorithms=[key.algorithm],
            )


def identity_headers(
    principal: Principal, assertion: str, parts: frozenset[str] | None
) -> list[tuple[bytes, bytes]]:
    """The X-Portal-* headers for one forwarded request."""
    headers = [
        (b"x-portal-subject", principal.subject.encode()),
        (b"x-portal-access-level", principal.access_level.encode()),
        (b"x-portal-auth-methods", ",".join(sorted(principal.auth_methods)).encode()),
        (b"x-portal-assertion", assertion.encode()),
    ]
    if parts is not None:
        headers.append((b"x-portal-visible-parts", ",".join(sorted(parts)).encode()))
    return headers
