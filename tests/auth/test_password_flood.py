"""A password flood cannot run more Argon2 hashes at once than the bound (each one takes
`argon2_memory_kib`, 64 MiB by default): the rest wait for a slot instead of exhausting memory."""

from __future__ import annotations

import asyncio
import threading
import time

from gateway.auth.passwords import PasswordHashing


class _Spy:
    """Wraps the Argon2 hasher and records how many hashes run at the same moment."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def _enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def _leave(self) -> None:
        with self.lock:
            self.now -= 1

    def verify(self, stored: str, password: str) -> bool:
        self._enter()
        try:
            time.sleep(0.01)  # long enough for a flood to pile up if nothing held it back
            return bool(self.inner.verify(stored, password))  # type: ignore[attr-defined]
        finally:
            self._leave()

    def hash(self, password: str) -> str:
        self._enter()
        try:
            return str(self.inner.hash(password))  # type: ignore[attr-defined]
        finally:
            self._leave()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_a_flood_of_logins_runs_at_most_the_bound_of_hashes_at_once() -> None:
    hashing = PasswordHashing(time_cost=1, memory_kib=1024, parallelism=1, max_concurrent=2)
    spy = _Spy(hashing._hasher)
    hashing._hasher = spy  # type: ignore[assignment]
    stored = await hashing.hash("the right password 1")
    results = await asyncio.gather(*(hashing.verify(stored, f"guess number {i}") for i in range(64)))
    assert not any(results)
    assert spy.peak == 2, f"{spy.peak} hashes ran at once (bound 2)"
    assert hashing.running == 0


def test_the_bound_defaults_to_two_per_core() -> None:
    import os

    assert PasswordHashing(time_cost=1, memory_kib=1024, parallelism=1).max_concurrent == 2 * (os.cpu_count() or 1)
