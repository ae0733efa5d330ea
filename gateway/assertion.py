"""The mutate stage: who is asking, stated to the backend in headers it can trust.

The identity headers are informative; `X-Portal-Assertion` is the proof: a
short-lived JWT signed with the gateway's key, bound to the upstream (``aud``).

Two bindings (``[signing] binding``, docs/configuration.md):

- ``"request"`` (default): one assertion per forwarded request, also bound to the
  method (``htm``), the exact forwarded path (``htu``), the request id (``rid``)
  and a fresh ``jti``, so a captured assertion is useless for another request.
- ``"session"``: one assertion per (session, audience) reused for at most half its
  lifetime, without ``htm``/``htu``/``rid``/``jti`` (what Pomerium and Oathkeeper
  send). It is re-signed as soon as anything it states changes: a new session id
  (login, rotation), another principal (step-up, access level), another key, other
  invoice parts. A request whose session ended never gets here (authentication
  refuses it first), so an ended session's cached assertion is never sent again.

The JWT is made here rather than through joserfc: the protected header is encoded
once per key, the claims are serialized compactly, and the one signature is made
with `cryptography` directly (joserfc's generic path cost about twice the signature).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gateway.keys import KeyStore, SigningKey
from gateway.principal import Principal
from gateway.settings import SigningSettings

__all__ = ["AssertionBinding", "AssertionSigner", "identity_headers"]

AssertionBinding = Literal["request", "session"]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@dataclass(frozen=True, slots=True)
class _PreparedKey:
    """A key ready to sign: its protected header already encoded, its signing function bound."""

    kid: str
    header: bytes  # base64url(header) + b"."
    sign: Callable[[bytes], bytes]


def _prepare(key: SigningKey) -> _PreparedKey:
    header = json.dumps({"alg": key.algorithm, "kid": key.kid, "typ": "JWT"}, separators=(",", ":"))
    private = key.key.private_key
    sign: Callable[[bytes], bytes]
    if isinstance(private, ed25519.Ed25519PrivateKey):
        sign = private.sign
    elif isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        ec_key = private

        def sign(data: bytes) -> bytes:
            # JWS wants r || s, 32 bytes each (RFC 7518 3.4), not the DER that OpenSSL returns.
            r, s = decode_dss_signature(ec_key.sign(data, _ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    else:
        raise ValueError(f"signing key {key.kid}: no private {key.algorithm} key")
    return _PreparedKey(key.kid, _b64(header.encode()) + b".", sign)


@dataclass(frozen=True, slots=True)
class _Reusable:
    token: str
    kid: str
    principal: Principal
    reuse_until: float


class AssertionSigner:
    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        ttl_seconds: int,
        clock: Callable[[], float],
        binding: AssertionBinding = "request",
        session_cache_size: int = 10_000,
    ) -> None:
        if binding not in ("request", "session"):
            raise ValueError(f"unknown assertion binding {binding!r}")
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl_seconds
        self.clock = clock
        self.binding: AssertionBinding = binding
        self.session_cache_size = session_cache_size
        #: A session-bound assertion is handed out again only while at least half of
        #: its lifetime is left, so a backend's clock skew allowance is never the margin.
        self.reuse_seconds = ttl_seconds / 2
        self._prepared: _PreparedKey | None = None
        self._reusable: OrderedDict[tuple[str, str, frozenset[str] | None], _Reusable] = OrderedDict()

    @classmethod
    def from_settings(cls, keys: KeyStore, settings: SigningSettings, *, clock: Callable[[], float]) -> AssertionSigner:
        return cls(
            keys,
            issuer=settings.issuer,
            ttl_seconds=settings.assertion_ttl_seconds,
            clock=clock,
            binding=settings.binding,
            session_cache_size=settings.session_cache_size,
        )

    def _key(self) -> _PreparedKey:
        key = self.keys.current  # rotates when due
        prepared = self._prepared
        if prepared is None or prepared.kid != key.kid:
            prepared = self._prepared = _prepare(key)
        return prepared

    def _encode(self, key: _PreparedKey, claims: dict[str, object]) -> str:
        signing_input = key.header + _b64(json.dumps(claims, separators=(",", ":")).encode())
        return (signing_input + b"." + _b64(key.sign(signing_input))).decode("ascii")

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
        if self.binding == "session" and principal.session_id is not None:
            return self._session_bound(principal, audience, parts)
        # Request binding (also for callers without a session, e.g. OIDC access tokens).
        key = self._key()
        now = int(self.clock())
        claims: dict[str, object] = {
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
        return self._encode(key, claims)

    def _session_bound(self, principal: Principal, audience: str, parts: frozenset[str] | None) -> str:
        assert principal.session_id is not None
        key = self._key()
        now = self.clock()
        slot = (principal.session_id, audience, parts)
        cached = self._reusable.get(slot)
        if (
            cached is not None
            and now < cached.reuse_until
            and cached.kid == key.kid
            and cached.principal == principal
        ):
            self._reusable.move_to_end(slot)
            return cached.token
        issued = int(now)
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": principal.subject,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl,
            "acl": principal.access_level,
            "amr": sorted(principal.auth_methods),
        }
        if principal.kind == "service":
            claims["client"] = True
        if parts is not None:
            claims["parts"] = sorted(parts)
        token = self._encode(key, claims)
        self._reusable[slot] = _Reusable(token, key.kid, principal, issued + self.reuse_seconds)
        self._reusable.move_to_end(slot)
        while len(self._reusable) > self.session_cache_size:
            self._reusable.popitem(last=False)
        return token

    def forget_session(self, session_id: str) -> None:
        """Drop a session's reusable assertions (logout, revocation): frees them before they age out."""
        for slot in [s for s in self._reusable if s[0] == session_id]:
            del self._reusable[slot]

    def reusable_count(self) -> int:
        return len(self._reusable)


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
