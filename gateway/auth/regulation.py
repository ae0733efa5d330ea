"""Brute-force regulation: attempt counters, lockouts, metrics and one log line per lockout.

Like Authelia's regulator, built from config, a store and a clock; unlike it, TOTP
and SMS-code failures are counted too (docs/domain.md section 1).

Counted *per identifier* (registration proofs: customer number or MSISDN), *per
account* (password and TOTP: keyed by the normalized login, so an unknown login
is counted exactly like a known one), *per number* (SMS codes) and *per client
address* (all attempts from one address).

Reserve, then compare. A caller asks `reserve()` *before* it compares a secret:
the store counts the attempt atomically (`Store.incr_unless`, one step on Redis)
and the attempt may be evaluated only when its count is within `max_failures`
and no lock is live. Fifty parallel guesses therefore get fifty distinct counts
and only the first `max_failures` reach the comparison; a check-then-count
regulator (read the lock, compare, then count) lets all fifty through. A failed
attempt keeps its count (`fail`), and the failure that reaches the limit locks the
key for `ban_time` (the counter itself runs out with its `find_time` window, so
there is no moment when neither holds). A right secret clears the key's count
(`succeed`) or, when more factors follow, gives just its own reservation back
(`release`); the client address's reservation is always given back for a right
secret, so a busy NAT address is not locked by its successful logins.

A refused attempt gets the same answer as a wrong secret — the caller does not
learn that it is locked. `set_if_absent` on the lock makes exactly one replica
write the lockout log line and count the metric; the line names the kind, the key
and the client address, never a secret.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from gateway.auth.config import RegulationSettings
from gateway.store.base import Store

__all__ = ["Attempt", "FailureKind", "Regulator"]

#: proof: a registration identifier as typed; proof_secret: the secret behind it (a line's
#: PUK or invoice, a customer's Kundenkennwort), whichever identifier it is reached through.
FailureKind = Literal["proof", "proof_secret", "account", "sms", "client"]
log = logging.getLogger("gateway.auth.regulation")


@dataclass(slots=True)
class Attempt:
    """One reserved attempt: whether it may be evaluated, and the counts it got."""

    kind: FailureKind
    key: str
    client_ip: str | None
    #: The key's count including this attempt; None when the key was locked.
    count: int | None
    #: The client address's count including this attempt; None when locked or not counted.
    client_count: int | None
    allowed: bool
    #: fail, succeed or release has settled it (see `Regulator.reserved`).
    concluded: bool = field(default=False, compare=False)


class Regulator:
    def __init__(self, store: Store, settings: RegulationSettings, registry: CollectorRegistry) -> None:
        self._store = store
        self._s = settings
        self.failures = Counter(
            "portal_gateway_auth_failures",
            "Failed authentication attempts (wrong proof, password, TOTP or SMS code, or refused while locked)",
            ["kind"],
            registry=registry,
        )
        self.lockouts = Counter(
            "portal_gateway_auth_lockouts",
            "Lockouts started by the regulator (identifier, account, number or client address)",
            ["kind"],
            registry=registry,
        )

    async def locked(self, kind: FailureKind, key: str, *, client_ip: str | None = None) -> bool:
        """True when `key` (or the client address) is locked right now (for inspection, not a gate)."""
        if await self._store.get(f"lock:{kind}:{key}") is not None:
            return True
        return client_ip is not None and await self._store.get(f"lock:client:{client_ip}") is not None

    async def reserve(self, kind: FailureKind, key: str, *, client_ip: str | None = None) -> Attempt:
        """Count one attempt before its secret is compared; evaluate it only when `allowed`."""
        window = self._s.find_time_seconds
        count = await self._store.incr_unless(f"fail:{kind}:{key}", window, unless=f"lock:{kind}:{key}")
        allowed = count is not None and count <= self._s.max_failures
        client_count: int | None = None
        if client_ip is not None:
            client_count = await self._store.incr_unless(
                f"fail:client:{client_ip}", window, unless=f"lock:client:{client_ip}"
            )
            allowed = allowed and client_count is not None and client_count <= self._s.client_max_failures
        return Attempt(kind, key, client_ip, count, client_count, allowed)

    @asynccontextmanager
    async def reserved(
        self, kind: FailureKind, key: str, *, client_ip: str | None = None
    ) -> AsyncIterator[Attempt]:
        """`reserve`, and give the reservation back when the caller fails before settling it.

        A dependency that fails after the reservation (the directory, the database, the
        store) ends the request with 503 before any secret is judged; without this the
        reservation would stay counted, and a short outage would lock the identifiers and
        accounts of everybody who tried during it.
        """
        attempt = await self.reserve(kind, key, client_ip=client_ip)
        try:
            yield attempt
        except Exception:
            if not attempt.concluded:
                with contextlib.suppress(Exception):  # the store may be what failed
                    await self.release(attempt)
            raise

    async def fail(self, attempt: Attempt) -> bool:
        """The attempt's secret was wrong (or it was refused); True when the key is locked now."""
        attempt.concluded = True
        self.failures.labels(attempt.kind).inc()
        locked = attempt.count is None
        if attempt.count is not None and attempt.count >= self._s.max_failures:
            await self._lock(attempt.kind, attempt.key, attempt.count, attempt.client_ip)
            locked = True
        if attempt.client_ip is not None and attempt.client_count is not None:
            if attempt.client_count >= self._s.client_max_failures:
                await self._lock("client", attempt.client_ip, attempt.client_count, attempt.client_ip)
        return locked

    async def _lock(self, kind: FailureKind, key: str, count: int, client_ip: str | None) -> None:
        if await self._store.set_if_absent(f"lock:{kind}:{key}", "1", self._s.ban_time_seconds):
            self.lockouts.labels(kind).inc()
            log.warning(
                "lockout kind=%s key=%s client=%s failures=%d ban_seconds=%d",
                kind,
                key,
                client_ip or "-",
                count,
                self._s.ban_time_seconds,
            )

    async def succeed(self, attempt: Attempt) -> None:
        """A right secret that completes the proof: the key's count is cleared (not a running lock)."""
        attempt.concluded = True
        await self._store.delete(f"fail:{attempt.kind}:{attempt.key}")
        await self._release_client(attempt)

    async def release(self, attempt: Attempt) -> None:
        """A right secret with more to prove (a password before its TOTP code): only this attempt is given back."""
        attempt.concluded = True
        if attempt.count is not None:
            await self._store.decr(f"fail:{attempt.kind}:{attempt.key}")
        await self._release_client(attempt)

    async def _release_client(self, attempt: Attempt) -> None:
        if attempt.client_ip is not None and attempt.client_count is not None:
            await self._store.decr(f"fail:client:{attempt.client_ip}")
