"""Brute-force regulation: failure counters, lockouts, metrics and one log line per lockout.

Like Authelia's regulator: built from config, a store and a clock, asked before
every check (`locked`) and told after every failure (`fail`). Unlike Authelia,
TOTP and SMS-code failures are counted too (DOMAIN.md section 1).

Counted *per identifier* (registration proofs: customer number or MSISDN), *per
account* (password and TOTP: keyed by the normalized login, so an unknown login
is counted exactly like a known one), *per number* (SMS codes) and *per client
address* (all failures from one address). `max_failures` failures within
`find_time` lock the key for `ban_time`. A locked key gets the same answer as a
wrong secret — the caller does not learn that it is locked — so callers check
`locked()` and then fail exactly as for a wrong secret, still counting.

Counters and locks live in the shared store: the atomic `incr` and
`set_if_absent` make them hold across replicas, and `set_if_absent` on the lock
makes exactly one replica write the lockout log line and count the metric.
The log line names the kind, the key and the client address, never a secret.
"""

from __future__ import annotations

import logging
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from gateway.auth.config import RegulationSettings
from gateway.store.base import Store

__all__ = ["FailureKind", "Regulator"]

FailureKind = Literal["proof", "account", "sms", "client"]
log = logging.getLogger("gateway.auth.regulation")


class Regulator:
    def __init__(self, store: Store, settings: RegulationSettings, registry: CollectorRegistry) -> None:
        self._store = store
        self._s = settings
        self.failures = Counter(
            "portal_gateway_auth_failures",
            "Failed authentication attempts (wrong proof, password, TOTP or SMS code)",
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
        """True when `key` (or the client address) is locked right now."""
        if await self._store.get(f"lock:{kind}:{key}") is not None:
            return True
        return client_ip is not None and await self._store.get(f"lock:client:{client_ip}") is not None

    async def fail(self, kind: FailureKind, key: str, *, client_ip: str | None = None) -> bool:
        """Count one failure; True when this (or an earlier) failure locked the key."""
        self.failures.labels(kind).inc()
        now_locked = await self._count(kind, key, self._s.max_failures, client_ip)
        if client_ip is not None:
            await self._count("client", client_ip, self._s.client_max_failures, client_ip)
        return now_locked

    async def _count(self, kind: FailureKind, key: str, limit: int, client_ip: str | None) -> bool:
        count = await self._store.incr(f"fail:{kind}:{key}", self._s.find_time_seconds)
        if count < limit:
            return await self._store.get(f"lock:{kind}:{key}") is not None
        if await self._store.set_if_absent(f"lock:{kind}:{key}", "1", self._s.ban_time_seconds):
            await self._store.delete(f"fail:{kind}:{key}")
            self.lockouts.labels(kind).inc()
            log.warning(
                "lockout kind=%s key=%s client=%s failures=%d ban_seconds=%d",
                kind,
                key,
                client_ip or "-",
                count,
                self._s.ban_time_seconds,
            )
        return True

    async def succeed(self, kind: FailureKind, key: str) -> None:
        """A correct secret clears the key's failure count (not a running lock)."""
        await self._store.delete(f"fail:{kind}:{key}")
