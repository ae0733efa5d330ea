"""A provider's signing keys, cached, refreshed when a token names an unknown kid.

Why "at most once a minute": a rotated key must work without a restart, so an
unknown kid triggers a refetch; but a flood of tokens with made-up kids must
not turn the gateway into a load generator against the provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from gateway.auth.oidc.errors import ProviderUnavailable

__all__ = ["JwksCache"]

PublicKey = RSAKey | ECKey | OKPKey
#: While no key set was ever loaded, a failed load is retried at most this often.
_RETRY_FIRST_LOAD_SECONDS = 5.0


class JwksCache:
    def __init__(
        self,
        jwks_uri: Callable[[], Awaitable[str]],
        *,
        http: httpx.AsyncClient,
        clock: Callable[[], float],
        min_refresh_seconds: float,
    ) -> None:
        self._jwks_uri = jwks_uri
        self._http = http
        self._clock = clock
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, PublicKey] = {}
        self._loaded = False
        #: When an unknown kid last caused a refetch (the first load does not count).
        self._forced_at: float | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PublicKey | None:
        """The public key with this kid, refetching the set at most once per interval."""
        found = self._keys.get(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._keys.get(kid)
            if found is not None:
                return found
            now = self._clock()
            if self._loaded:
                if self._forced_at is not None and now - self._forced_at < self._min_refresh:
                    return None
                self._forced_at = now
            elif self._failed_at is not None and now - self._failed_at < _RETRY_FIRST_LOAD_SECONDS:
                raise ProviderUnavailable(detail="JWKS not loaded yet (provider unreachable)")
            try:
                await self._refresh()
            except ProviderUnavailable:
                if not self._loaded:
                    self._failed_at = now
                raise
            return self._keys.get(kid)

    async def refresh(self) -> None:
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        uri = await self._jwks_uri()
        try:
            response = await self._http.get(uri, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                detail=f"JWKS {uri} unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise ProviderUnavailable(detail=f"JWKS {uri}: HTTP {response.status_code}")
        try:
            doc = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(detail=f"JWKS {uri}: not JSON") from exc
        self._keys = _public_keys(doc)
        self._loaded = True

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)


def _public_keys(doc: object) -> dict[str, PublicKey]:
    """Asymmetric signing keys with a kid; everything else is ignored.

    Symmetric ("oct") keys and keys without kid are dropped here, so no token can
    ever be checked against them.
    """
    keys: dict[str, PublicKey] = {}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        return keys
    for raw in doc["keys"]:
        if not isinstance(raw, dict):
            continue
        kid = raw.get("kty") and raw.get("kid")
        if not isinstance(kid, str) or not kid or raw.get("use", "sig") != "sig":
            continue
        if raw.get("kty") not in ("RSA", "EC", "OKP") or "d" in raw:
            continue
        try:
            key = KeySet.import_key_set({"keys": [raw]}).keys[0]
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAKey | ECKey | OKPKey):
            keys[kid] = key
    return keys
