"""Hashing and checking the registration proofs (Kundenkennwort, PUK) with argon2id.

Two cost settings, on purpose:

- **Kundenkennwort**: a chosen password, possibly reused elsewhere, so it gets the
  RFC 9106 "second recommended" argon2id profile (t=3, 64 MiB, p=4; ~50 ms).
- **PUK**: 8 digits, i.e. at most 10^8 values. No affordable argon2 cost stops an offline
  search of so small a space (even 50 ms per guess is ~60 CPU-days, trivially parallel), so
  a high cost buys nothing there; what protects a PUK is the online lockout (5 wrong proofs
  per 15 min) and the database's own access control. The hash only keeps the PUK out of
  dumps, logs and screens. A cheap profile (t=1, 1 MiB, p=1; well under 1 ms) keeps
  importing 1,000+ lines fast and verification light on the event loop.

Verification is constant-time in the candidate (argon2 compares the full digest), and
`verify` also spends the same work when there is no stored hash (unknown customer or line)
by checking against a dummy hash, so timing does not tell whether the identifier exists.
Hashing runs in a worker thread (`asyncio.to_thread`) so ~50 ms never blocks the loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["ProofHasher", "ProofHashers", "is_argon2id_hash"]


def is_argon2id_hash(value: str) -> bool:
    return value.startswith("$argon2id$")


@dataclass(frozen=True, slots=True)
class ProofHasher:
    """One argon2id profile with a dummy hash for the "nothing stored" case."""

    time_cost: int
    memory_cost: int  # KiB
    parallelism: int
    _hasher: PasswordHasher = field(init=False, repr=False, compare=False)
    _dummy: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hasher = PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_cost,
            parallelism=self.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        object.__setattr__(self, "_hasher", hasher)
        object.__setattr__(self, "_dummy", hasher.hash("portal-gateway-dummy-proof"))

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify_sync(self, stored_hash: str | None, candidate: str) -> bool:
        """True only if `candidate` matches `stored_hash`; never raises for a bad hash."""
        target = stored_hash if stored_hash and is_argon2id_hash(stored_hash) else self._dummy
        ok: bool
        try:
            ok = self._hasher.verify(target, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        return bool(ok) and target is not self._dummy

    async def verify(self, stored_hash: str | None, candidate: str) -> bool:
        return await asyncio.to_thread(self.verify_sync, stored_hash, candidate)

    async def hash_async(self, secret: str) -> str:
        return await asyncio.to_thread(self.hash, secret)


@dataclass(frozen=True, slots=True)
class ProofHashers:
    """The two profiles used by the SQL directory and the importer (tests may pass cheaper ones)."""

    kundenkennwort: ProofHasher = field(
        default_factory=lambda: ProofHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
    )
    puk: ProofHasher = field(
        default_factory=lambda: ProofHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
