"""Test helpers for the auth tests."""

from __future__ import annotations


class Clock:
    """A clock tests can move: `clock()` returns the time, `clock.advance(s)` moves it."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
