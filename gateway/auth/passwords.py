"""Portal passwords: the rules for a new password, and Argon2id hashing.

Rules (docs/domain.md section 1): at least 12 characters [seed]; not the identifier or
the login name, and not a common password [ours]. "Common" means in the shipped
list (`data/common-passwords.txt`) or such a word followed only by digits and
punctuation ("password2025!"), the way people stretch short passwords.

Hashing is Argon2id (argon2-cffi) and runs in a worker thread: it is meant to be
slow and must not stall the event loop. At most `max_concurrent` hashes run at
once (an asyncio semaphore; default two per core): each one holds
`memory_kib` (64 MiB by default) while it runs, so an unbounded password flood
would exhaust memory and the thread pool before the regulator locks anything.
Waiting callers queue on the semaphore, not in threads. Verifying an unknown login still hashes
against a fixed dummy hash, so the answer time does not tell whether a login exists.
"""

from __future__ import annotations

import asyncio
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHashing", "PasswordPolicy", "load_common_passwords"]

_T = TypeVar("_T")
_TRAILING = re.compile(r"[\d\W_]+$")


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def load_common_passwords(path: str | Path | None = None) -> frozenset[str]:
    """Read a common-password list (one a line, ``#`` comments); None = the shipped one."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("gateway.auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        _norm(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    common: frozenset[str]
    min_length: int = 12

    def problem(
        self, password: str, *, identifier: str | None = None, login: str | None = None
    ) -> str | None:
        """The reason code why `password` may not be used, or None when it is fine."""
        if len(password) < self.min_length:
            return "password_too_short"
        if len(password) > 1024:
            return "password_too_long"
        candidate = _norm(password)
        for other in (identifier, login):
            if other and candidate == _norm(other):
                return "password_is_identifier"
        stem = _TRAILING.sub("", candidate)
        if candidate in self.common or (stem and stem in self.common):
            return "password_too_common"
        return None


class PasswordHashing:
    """Argon2id hash and verify, off the event loop."""

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_kib: int = 65536,
        parallelism: int = 4,
        max_concurrent: int = 0,
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._hasher.hash("dummy password for unknown logins")
        self.max_concurrent = max_concurrent if max_concurrent > 0 else 2 * (os.cpu_count() or 1)
        self._slots = asyncio.Semaphore(self.max_concurrent)
        #: Hashes running right now (never above `max_concurrent`; tests and metrics read it).
        self.running = 0

    async def _off_loop(self, fn: Callable[[], _T]) -> _T:
        async with self._slots:
            self.running += 1
            try:
                return await asyncio.to_thread(fn)
            finally:
                self.running -= 1

    async def hash(self, password: str) -> str:
        return await self._off_loop(lambda: self._hasher.hash(password))

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored or self._dummy, password)) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; `stored=None` costs the same and is False."""
        return await self._off_loop(lambda: self._verify(stored, password))

    def needs_rehash(self, stored: str) -> bool:
        return bool(self._hasher.check_needs_rehash(stored))
