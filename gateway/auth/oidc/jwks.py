"""A provider's signing keys: cached for a bounded time, refetched for a new kid.

Why a TTL: a key the provider withdrew (after a compromise, or a routine rotation)
must stop being trusted without a restart. A fetched set is trusted for the
provider's ``Cache-Control: max-age``, never longer than ``jwks_max_age_seconds``
(and never shorter than `MIN_AGE_SECONDS`, so ``no-store`` cannot make every
request a fetch). When the set is stale it is fetched again before any key is
handed out; while the provider is down a stale set serves for one more TTL
(`stale-if-error`), then bearer checks fail closed (503).

Why "per kid": a token that names an unknown kid makes us refetch — that is how a
real rotation works without a restart — but each kid value may cause that at most
once per ``jwks_min_refresh_seconds`` (remembered in a bounded LRU of
`REMEMBERED_KIDS` values). A flood of forged tokens with random kids therefore
never blocks the next real kid, and it cannot make the gateway a load generator
either: refetches are single-flight, and a caller that waited while another
caller's fetch ran uses that result instead of fetching again.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from gateway.auth.oidc.errors import ProviderUnavailable

__all__ = ["MIN_AGE_SECONDS", "REMEMBERED_KIDS", "JwksCache", "max_age_of"]

PublicKey = RSAKey | ECKey | OKPKey
#: While no key set was ever loaded, a failed load is retried at most this often.
_RETRY_FIRST_LOAD_SECONDS = 5.0
#: A failed refetch of a stale set is retried at most this often.
_RETRY_STALE_SECONDS = 5.0
#: The shortest time a fetched set is used, whatever Cache-Control says.
MIN_AGE_SECONDS = 5.0
#: How many unknown kid values the per-kid refetch limit remembers.
REMEMBERED_KIDS = 1000
#: A kid longer than this is nobody's key: never a reason to fetch.
MAX_KID_LENGTH = 256
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


def max_age_of(cache_control: str | None, cap: float) -> float:
    """How long to use a fetched set: the response's max-age, capped, floored."""
    if cache_control is None:
        return cap
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return MIN_AGE_SECONDS
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return cap
    return max(MIN_AGE_SECONDS, min(cap, float(match.group(1))))


class JwksCache:
    def __init__(
        self,
        jwks_uri: Callable[[], Awaitable[str]],
        *,
        http: httpx.AsyncClient,
        clock: Callable[[], float],
        min_refresh_seconds: float,
        max_age_seconds: float = 300.0,
        remembered_kids: int = REMEMBERED_KIDS,
    ) -> None:
        self._jwks_uri = jwks_uri
        self._http = http
        self._clock = clock
        self._min_refresh = min_refresh_seconds
        self._max_age_cap = max_age_seconds
        self._remembered = remembered_kids
        self._keys: dict[str, PublicKey] = {}
        self._loaded = False
        self._fetched_at = 0.0
        self._age = max_age_seconds
        #: Fetches started so far: a waiter compares it to decide whether a fetch ran
        #: after it arrived (then that result is fresh enough for it).
        self._fetches = 0
        #: Unknown kid → when it last caused a refetch (bounded LRU).
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, now: float) -> bool:
        return self._loaded and now < self._fetched_at + self._age

    def _may_refetch_for(self, kid: str, now: float) -> bool:
        """At most one refetch per kid value per interval; remembers the newest kids."""
        if len(kid) > MAX_KID_LENGTH:
            return False
        last = self._unknown.get(kid)
        if last is not None and now - last < self._min_refresh:
            self._unknown.move_to_end(kid)
            return False
        self._unknown[kid] = now
        self._unknown.move_to_end(kid)
        while len(self._unknown) > self._remembered:
            self._unknown.popitem(last=False)
        return True

    async def key(self, kid: str) -> PublicKey | None:
        """The public key with this kid from a set that is not stale, or None."""
        now = self._clock()
        if self._fresh(now):
            found = self._keys.get(kid)
            if found is not None:
                return found
            if not self._may_refetch_for(kid, now):
                return None
        arrived = self._fetches
        async with self._lock:
            now = self._clock()
            if self._fetches > arrived and self._fresh(now):
                # Another caller fetched while we waited: its answer is as new as ours would be.
                return self._keys.get(kid)
            if self._fresh(now) and kid in self._keys:
                return self._keys[kid]
            await self._fetch_or_keep_stale(now)
            return self._keys.get(kid)

    async def _fetch_or_keep_stale(self, now: float) -> None:
        if self._failed_at is not None:
            retry = _RETRY_STALE_SECONDS if self._loaded else _RETRY_FIRST_LOAD_SECONDS
            if now - self._failed_at < retry:
                self._serve_stale_or_fail(now, "JWKS refetch failed a moment ago")
                return
        try:
            await self._refresh()
        except ProviderUnavailable as exc:
            self._failed_at = now
            self._serve_stale_or_fail(now, exc.detail or "JWKS unreachable")

    def _serve_stale_or_fail(self, now: float, detail: str) -> None:
        if self._loaded and now < self._fetched_at + 2 * self._age:
            return  # stale-if-error: one more TTL with the last set the provider gave
        raise ProviderUnavailable(detail=detail)

    async def refresh(self) -> None:
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        self._fetches += 1
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
        self._failed_at = None
        self._fetched_at = self._clock()
        self._age = max_age_of(response.headers.get("cache-control"), self._max_age_cap)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def fetches(self) -> int:
        """How many fetches were started (for tests and metrics)."""
        return self._fetches


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
