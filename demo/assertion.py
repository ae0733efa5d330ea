"""Verify the gateway's `X-Portal-Assertion`, as a real backend behind the gateway would.

The gateway signs, per forwarded request, a short-lived JWT (docs/deployment.md, "Backends: verify
`X-Portal-Assertion`"). A backend must not trust the plain `X-Portal-*` headers alone: anyone who reaches the
backend directly could send them. It trusts the signature, checked against the gateway's JWKS,
and binds the token to this very request (`htm` = method, `htu` = the exact raw path), so an
assertion captured for `GET /api/lines/A/usage` cannot be replayed on another path or method.

Keys are fetched with httpx and cached. A token with an unknown `kid` (the gateway rotated its
key) triggers one refetch, at most once every `refetch_interval` seconds, so that garbage kids
cannot turn the backend into a JWKS hammer. If the keys cannot be fetched at all the caller
gets `KeysUnavailable` (→ 503), never a silent pass.

Reusable: `AssertionVerifier(jwks_url=..., audience=...)` and `await verifier.verify(token,
method=..., path=...)`; `raw_request_path(scope)` gives the `path` to bind against.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AssertionVerifier",
    "InvalidAssertion",
    "KeysUnavailable",
    "VerifiedAssertion",
    "raw_request_path",
]

#: "EdDSA" is what the gateway sends (docs/deployment.md); "Ed25519" is its RFC 9864 name.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset({"EdDSA", "Ed25519", "ES256"})
_REQUIRED_CLAIMS: tuple[str, ...] = (
    "iss",
    "aud",
    "sub",
    "iat",
    "exp",
    "jti",
    "acl",
    "amr",
    "rid",
    "htm",
    "htu",
)
#: `[signing] binding = "session"`: one assertion per session and backend, reused for a while,
#: so it names no request (no htm/htu/rid) and carries no single-use jti.
_SESSION_REQUIRED_CLAIMS: tuple[str, ...] = ("iss", "aud", "sub", "iat", "exp", "acl", "amr")
_MAX_TOKEN_LENGTH = 8192
_PublicKey = OKPKey | ECKey


class InvalidAssertion(Exception):
    """The assertion is missing or not acceptable; `detail` is safe to show (no token content)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class KeysUnavailable(Exception):
    """The gateway's JWKS could not be fetched (or was unusable): answer 503, fail closed."""


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """Who asked, as the gateway signed it."""

    subject: str
    access_level: str
    auth_methods: tuple[str, ...]
    #: None for a session-bound assertion (it names no request)
    request_id: str | None
    parts: tuple[str, ...] | None
    key_id: str
    claims: Mapping[str, Any]


def raw_request_path(scope: Mapping[str, Any]) -> str:
    """The exact path bytes the server received (no query), decoded as ASCII.

    Servers differ: uvicorn puts only the path into `raw_path`, httpx's ASGITransport the path
    and the query, so anything from `?` on is cut. Non-ASCII bytes raise `InvalidAssertion`
    (a gateway forwards only canonical, percent-encoded paths).
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("ascii")
        except UnicodeDecodeError as error:
            raise InvalidAssertion("request path is not ASCII") from error
    else:
        text = str(scope.get("root_path", "")) + str(scope.get("path", ""))
    return text.split("?", 1)[0]


def _b64url_json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError) as error:
        raise InvalidAssertion("malformed token header") from error
    if not isinstance(value, dict):
        raise InvalidAssertion("malformed token header")
    return value


def _key_matches(key: _PublicKey, alg: str) -> bool:
    if alg in ("EdDSA", "Ed25519"):
        return isinstance(key, OKPKey) and key.curve_name == "Ed25519"
    return isinstance(key, ECKey) and key.curve_name == "P-256"


class AssertionVerifier:
    """Checks signature (gateway JWKS), `iss`, `aud`, `exp`/`iat` (with skew), `htm` and `htu`."""

    def __init__(
        self,
        *,
        jwks_url: str,
        audience: str,
        issuer: str = "portal-gateway",
        clock: Callable[[], float] = time.time,
        skew_seconds: int = 5,
        refetch_interval: float = 10.0,
        max_lifetime_seconds: int = 300,
        fetch_timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        binding: Literal["request", "session"] = "request",
    ) -> None:
        if binding not in ("request", "session"):
            raise ValueError(f"binding must be 'request' or 'session', got {binding!r}")
        if not jwks_url.startswith(("http://", "https://")):
            raise ValueError(f"jwks_url must be an http(s) URL, got {jwks_url!r}")
        if not audience or not issuer:
            raise ValueError("audience and issuer must not be empty")
        self.jwks_url = jwks_url
        self.audience = audience
        self.issuer = issuer
        #: "session" accepts the gateway's session-bound assertions too (the gateway's
        #: `[signing] binding`); a request-bound one is then still checked as such.
        self.binding = binding
        self._clock = clock
        self._skew = skew_seconds
        self._refetch_interval = refetch_interval
        self._max_lifetime = max_lifetime_seconds
        self._fetch_timeout = fetch_timeout
        self._transport = transport
        self._keys: dict[str, _PublicKey] | None = None
        self._last_fetch: float | None = None
        self._lock = asyncio.Lock()
        #: number of JWKS fetch attempts (for tests and diagnostics)
        self.fetch_count = 0
        #: jti → exp of assertions already used: each is good for one request only.
        self._seen: dict[str, float] = {}

    # ------------------------------------------------------------------ keys
    async def _fetch(self) -> dict[str, _PublicKey]:
        self.fetch_count += 1
        self._last_fetch = self._clock()
        try:
            async with httpx.AsyncClient(
                timeout=self._fetch_timeout, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.get(self.jwks_url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
            key_set = KeySet.import_key_set(document)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as error:
            raise KeysUnavailable(f"cannot load JWKS: {type(error).__name__}") from error
        keys: dict[str, _PublicKey] = {}
        for key in key_set:
            kid = key.kid
            if not isinstance(key, OKPKey | ECKey) or not kid:
                continue  # RSA or symmetric keys are never the gateway's
            if key.is_private:
                # A JWKS must never carry private keys; keep only the public half.
                key = type(key).import_key(key.as_dict(private=False))
            keys[kid] = key
        self._keys = keys
        return keys

    async def _key_for(self, kid: str) -> _PublicKey:
        keys = self._keys
        if keys is not None and kid in keys:
            return keys[kid]
        async with self._lock:
            keys = self._keys  # another request may have refreshed meanwhile
            if keys is not None and kid in keys:
                return keys[kid]
            now = self._clock()
            if keys is None:
                if self._last_fetch is not None and now - self._last_fetch < 1.0 and self.fetch_count > 0:
                    raise KeysUnavailable("JWKS not loaded (last attempt failed)")
                keys = await self._fetch()
            elif self._last_fetch is None or now - self._last_fetch >= self._refetch_interval:
                keys = await self._fetch()
        if kid not in keys:
            raise InvalidAssertion("unknown key id")
        return keys[kid]

    # ------------------------------------------------------------------ verify
    async def verify(self, token: str | None, *, method: str, path: str) -> VerifiedAssertion:
        """Return who asked, or raise `InvalidAssertion` / `KeysUnavailable`."""
        if not token:
            raise InvalidAssertion("missing X-Portal-Assertion")
        token = token.strip()
        if len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidAssertion("token too long")
        segments = token.split(".")
        if len(segments) != 3 or not all(segments):
            raise InvalidAssertion("not a signed compact JWT")
        header = _b64url_json(segments[0])
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise InvalidAssertion("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidAssertion("missing key id")
        key = await self._key_for(kid)
        if not _key_matches(key, alg):
            raise InvalidAssertion("key does not fit the algorithm")
        key_alg = key.alg
        if key_alg is not None and key_alg != alg and {key_alg, alg} != {"EdDSA", "Ed25519"}:
            raise InvalidAssertion("key is published for another algorithm")
        try:
            with warnings.catch_warnings():
                # joserfc warns that "EdDSA" is superseded by "Ed25519" (RFC 9864); the gateway
                # contract names EdDSA, so the warning is expected noise here.
                warnings.simplefilter("ignore", SecurityWarning)
                decoded = jwt.decode(token, key, algorithms=[alg])
        except JoseError as error:
            raise InvalidAssertion(f"signature check failed: {error.error}") from error
        except (ValueError, TypeError) as error:
            raise InvalidAssertion("malformed token") from error
        return self._check_claims(decoded.claims, method=method, path=path, kid=kid)

    def _check_claims(
        self, claims: Mapping[str, Any], *, method: str, path: str, kid: str
    ) -> VerifiedAssertion:
        request_bound = self.binding == "request" or any(c in claims for c in ("htm", "htu", "jti", "rid"))
        required = _REQUIRED_CLAIMS if request_bound else _SESSION_REQUIRED_CLAIMS
        missing = [name for name in required if name not in claims]
        if missing:
            raise InvalidAssertion(f"missing claims: {', '.join(missing)}")
        if claims["iss"] != self.issuer:
            raise InvalidAssertion("wrong issuer")
        audience = claims["aud"]
        if not (audience == self.audience or (isinstance(audience, list) and self.audience in audience)):
            raise InvalidAssertion("wrong audience")
        iat, exp = claims["iat"], claims["exp"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
            raise InvalidAssertion("iat/exp must be numbers")
        now = self._clock()
        if exp <= now - self._skew:
            raise InvalidAssertion("expired")
        if iat > now + self._skew:
            raise InvalidAssertion("issued in the future")
        if exp <= iat or exp - iat > self._max_lifetime:
            raise InvalidAssertion("lifetime not acceptable")
        nbf = claims.get("nbf", now)
        if not isinstance(nbf, int | float) or nbf > now + self._skew:
            raise InvalidAssertion("not yet valid")
        if request_bound:
            if not isinstance(claims["htm"], str) or claims["htm"].upper() != method.upper():
                raise InvalidAssertion("htm does not match the request method")
            if claims["htu"] != path:
                raise InvalidAssertion("htu does not match the request path")
        subject, access_level = claims["sub"], claims["acl"]
        request_id = claims["rid"] if request_bound else None
        if not all(isinstance(v, str) and v for v in (subject, access_level)) or (
            request_bound and not (isinstance(request_id, str) and request_id)
        ):
            raise InvalidAssertion("sub/acl/rid must be non-empty strings")
        if access_level not in ("full", "restricted"):
            raise InvalidAssertion("unknown access level")
        methods = claims["amr"]
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise InvalidAssertion("amr must be a list of strings")
        if request_bound:
            jti = claims["jti"]
            if not isinstance(jti, str) or not jti:
                raise InvalidAssertion("jti must be a non-empty string")
            if jti in self._seen:
                raise InvalidAssertion("assertion already used (replay)")
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now - self._skew}
            self._seen[jti] = float(exp)
        parts_claim = claims.get("parts")
        parts: tuple[str, ...] | None = None
        if parts_claim is not None:
            if not isinstance(parts_claim, list) or not all(isinstance(p, str) for p in parts_claim):
                raise InvalidAssertion("parts must be a list of strings")
            parts = tuple(parts_claim)
        return VerifiedAssertion(
            subject=subject,
            access_level=access_level,
            auth_methods=tuple(methods),
            request_id=request_id,
            parts=parts,
            key_id=kid,
            claims=dict(claims),
        )
