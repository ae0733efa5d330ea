"""Provider metadata from OpenID Connect Discovery, fetched once and cached.

Why cached with a TTL and not per request: every login and every JWKS lookup
needs the endpoints, and a provider that is briefly down must not take the
gateway's bearer validation with it. An unreachable provider raises
`ProviderUnavailable` (503, fail closed); the readiness check retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from gateway.auth.oidc.errors import ProviderUnavailable

__all__ = ["Discovery", "ProviderMetadata"]


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    userinfo_endpoint: str | None
    code_challenge_methods: frozenset[str]
    backchannel_logout_supported: bool


def _str(doc: dict[str, object], key: str, issuer: str, *, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ProviderUnavailable(detail=f"discovery of {issuer}: {key} missing or not a URL")
    return value


def parse_metadata(doc: object, issuer: str) -> ProviderMetadata:
    """Check the discovery document: its issuer must be exactly the configured one."""
    if not isinstance(doc, dict):
        raise ProviderUnavailable(detail=f"discovery of {issuer}: not a JSON object")
    if doc.get("issuer") != issuer:
        raise ProviderUnavailable(
            detail=f"discovery of {issuer}: issuer mismatch ({doc.get('issuer')!r})"
        )
    methods = doc.get("code_challenge_methods_supported")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_str(doc, "authorization_endpoint", issuer) or "",
        token_endpoint=_str(doc, "token_endpoint", issuer) or "",
        jwks_uri=_str(doc, "jwks_uri", issuer) or "",
        end_session_endpoint=_str(doc, "end_session_endpoint", issuer, required=False),
        userinfo_endpoint=_str(doc, "userinfo_endpoint", issuer, required=False),
        code_challenge_methods=frozenset(m for m in methods if isinstance(m, str))
        if isinstance(methods, list)
        else frozenset(),
        backchannel_logout_supported=doc.get("backchannel_logout_supported") is True,
    )


class Discovery:
    """The metadata of one provider; `get()` fetches when absent or older than the TTL."""

    def __init__(
        self, issuer: str, *, http: httpx.AsyncClient, clock: Callable[[], float], ttl: float
    ) -> None:
        self.issuer = issuer
        self._http = http
        self._clock = clock
        self._ttl = ttl
        self._metadata: ProviderMetadata | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    @property
    def url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def get(self) -> ProviderMetadata:
        cached = self._metadata
        if cached is not None and self._clock() - self._fetched_at < self._ttl:
            return cached
        async with self._lock:
            if self._metadata is not None and self._clock() - self._fetched_at < self._ttl:
                return self._metadata
            try:
                metadata = await self._fetch()
            except ProviderUnavailable as exc:
                self.last_error = exc.detail
                if cached is not None:
                    # A stale document beats none: keys and endpoints rarely move.
                    return cached
                raise
            self._metadata = metadata
            self._fetched_at = self._clock()
            self.last_error = None
            return metadata

    async def _fetch(self) -> ProviderMetadata:
        try:
            response = await self._http.get(self.url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                detail=f"discovery of {self.issuer} unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise ProviderUnavailable(
                detail=f"discovery of {self.issuer}: HTTP {response.status_code}"
            )
        try:
            doc = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(detail=f"discovery of {self.issuer}: not JSON") from exc
        return parse_metadata(doc, self.issuer)
