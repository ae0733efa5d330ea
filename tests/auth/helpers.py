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


PASSWORD = "a-long-portal-password"


async def register(client, **fields):
    """POST /auth/register with defaults (Sophie, PUK)."""
    body = {
        "login": "sophie@example.at",
        "identifier": "436641000020",
        "proof_type": "puk",
        "proof": "20202020",
        "password": PASSWORD,
    }
    body.update(fields)
    return await client.post("/auth/register", json=body)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
