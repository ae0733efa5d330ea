"""Validation of every JWT a provider hands us: access tokens, ID tokens, logout tokens.

One path for all three, so that the rules cannot drift apart:
1. the header is read first and refused unless its ``alg`` is on the provider's
   allow-list (never ``none`` or HMAC) and it names a ``kid``;
2. the key comes only from the provider's JWKS (never from ``jku``/``jwk``/``x5u``
   headers, never a symmetric key);
3. joserfc checks the signature with exactly that algorithm;
4. ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` are checked with a small leeway
   against the injected clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError

from gateway.auth.oidc.config import FORBIDDEN_ALGORITHMS
from gateway.auth.oidc.errors import TokenRejected
from gateway.auth.oidc.jwks import JwksCache

__all__ = ["MAX_TOKEN_BYTES", "TokenVerifier"]

#: Far above any real token; keeps parsing bounded.
MAX_TOKEN_BYTES = 16 * 1024


class TokenVerifier:
    """Checks JWTs signed by one provider."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks: JwksCache,
        algorithms: Collection[str],
        clock: Callable[[], float],
        leeway: int,
    ) -> None:
        self.issuer = issuer
        self._jwks = jwks
        self._algorithms = frozenset(algorithms) - FORBIDDEN_ALGORITHMS
        self._clock = clock
        self._leeway = leeway

    def header(self, token: str) -> dict[str, Any]:
        """The protected header, after the algorithm and kid rules (no signature check yet)."""
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise TokenRejected("oidc_token_malformed", "not a compact JWS")
        try:
            header = dict(jws.extract_compact(token.encode("ascii")).protected)
        except (JoseError, ValueError, UnicodeError) as exc:
            raise TokenRejected(
                "oidc_token_malformed", f"unreadable header: {type(exc).__name__}"
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none" or alg in FORBIDDEN_ALGORITHMS:
            raise TokenRejected("oidc_token_algorithm", f"algorithm {alg!r} is never accepted")
        if alg not in self._algorithms:
            raise TokenRejected(
                "oidc_token_algorithm", f"algorithm {alg!r} not allowed for {self.issuer}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("oidc_token_no_kid", "token header names no kid")
        if "crit" in header:
            raise TokenRejected(
                "oidc_token_malformed", "critical header extensions are not supported"
            )
        return header

    async def verify(
        self,
        token: str,
        *,
        audience: str,
        required: Iterable[str] = ("sub",),
        typ: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """The token's claims, or `TokenRejected` naming the first rule it broke."""
        header = self.header(token)
        if typ is not None:
            value = header.get("typ")
            if not isinstance(value, str) or value.lower().removeprefix("application/") not in typ:
                raise TokenRejected("oidc_token_type", f"token type {value!r} not expected here")
        key = await self._jwks.key(header["kid"])
        if key is None:
            raise TokenRejected(
                "oidc_token_unknown_key", "no key with that kid in the provider's JWKS"
            )
        try:
            decoded = jwt.decode(token, key, algorithms=[header["alg"]])
        except (JoseError, ValueError, json.JSONDecodeError) as exc:
            raise TokenRejected(
                "oidc_token_signature", f"signature check failed: {type(exc).__name__}"
            ) from None
        claims = dict(decoded.claims)
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": audience},
            "exp": {"essential": True},
        }
        for name in required:
            options.setdefault(name, {"essential": True})
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()), leeway=self._leeway, **options
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("oidc_token_expired", "token expired") from None
        except MissingClaimError as exc:
            raise TokenRejected("oidc_token_claims", f"missing claim {exc.claim}") from None
        except InvalidClaimError as exc:
            reason = {
                "aud": "oidc_token_audience",
                "iss": "oidc_token_issuer",
                "nbf": "oidc_token_not_yet_valid",
            }
            raise TokenRejected(
                reason.get(exc.claim, "oidc_token_claims"), f"invalid claim {exc.claim}"
            ) from None
        except JoseError as exc:
            raise TokenRejected(
                "oidc_token_claims", f"claims rejected: {type(exc).__name__}"
            ) from None
        sub = claims.get("sub")
        if "sub" in claims and (not isinstance(sub, str) or not sub or len(sub) > 255):
            raise TokenRejected(
                "oidc_token_claims", "sub must be a non-empty string of at most 255 characters"
            )
        return claims
