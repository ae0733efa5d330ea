"""The `Store` protocol: short-lived keyed state with TTLs and atomic operations.

Why these operations and no more: every piece of auth state (sessions, pending
logins, SMS challenges, used TOTP steps, failure counters, lockouts) is a value
that expires. What must hold across gateway replicas is expressed by the three
atomic primitives:

- `incr` (count and start the window in one step: regulation counters),
- `set_if_absent` (exactly one replica wins: "this TOTP step is now used",
  "this lockout is new", "an SMS may be sent again"),
- `pop` (read and delete in one step: single-use codes and pending logins),
- `incr_unless` (reserve an attempt before a secret is compared: count it
  unless a lock is live, so N parallel guesses get N distinct counts and only
  the first `max_failures` are evaluated), and `decr` (give a reservation back),
- `replace_if_equal` (compare-and-set: a session touch writes only over the
  record it read, so it can never bring back a revoked or rotated session),
- `get_with_ref` (a value and the value it names, in one round trip: the
  session lookup reads the record and its account's logout epoch at once).

Values are strings (JSON where structured). TTLs are seconds (floats allowed).
Every method raises `StoreUnavailable` when the backing store does not answer;
callers fail closed (503).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Store", "StoreUnavailable"]


class StoreUnavailable(Exception):
    """The store did not answer; the request is refused (fail closed)."""


@runtime_checkable
class Store(Protocol):
    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""
        ...

    async def set(self, key: str, value: str, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds (overwrites)."""
        ...

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        """Store only when no live value exists; True when this call stored it."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the key (no error when absent)."""
        ...

    async def pop(self, key: str) -> str | None:
        """Atomically read and delete; only one caller gets the value."""
        ...

    async def incr(self, key: str, ttl: float) -> int:
        """Atomically add one and return the new count.

        The TTL is set when the counter is created (the first increment), so the
        counter counts events in a window that starts with the first event.
        """
        ...

    async def incr_unless(self, key: str, ttl: float, *, unless: str) -> int | None:
        """`incr`, in the same atomic step as checking `unless`: None (and no count) while `unless` is live."""
        ...

    async def decr(self, key: str) -> int:
        """Atomically subtract one from a live counter (never below 0, never creating it); the new count."""
        ...

    async def replace_if_equal(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Store `value` only when the live value is exactly `expected`; True when it did."""
        ...

    async def get_with_ref(self, key: str, ref_prefix: str) -> tuple[str | None, str | None]:
        """The value of `key` and, when it starts with a line ``<ref>\\n``, the value of `ref_prefix + ref`.

        One atomic read: the session record names its account on its first line, and
        the account's epoch is read with it.
        """
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left for a live key, None when absent (or without expiry)."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot answer."""
        ...

    async def close(self) -> None: ...
