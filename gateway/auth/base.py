"""The authentication stage's contract: authenticators and what they read.

An authenticator returns None when the request carries no credential of its
kind ("not responsible", as in Oathkeeper) and raises `AuthenticationFailed`
when it carries one that is bad. The first non-None Principal wins; all None
means anonymous, which grants nothing by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import AuthenticationFailed
from gateway.principal import Principal

__all__ = ["AuthenticationFailed", "Authenticator", "Credentials"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What authenticators may look at: never the raw request."""

    authorization: str | None
    cookies: Mapping[str, str]
    client_ip: str
    method: str
    path: str


class Authenticator(Protocol):
    id: str

    async def authenticate(self, credentials: Credentials) -> Principal | None: ...
