"""The short-lived state of a browser login, kept in the store and bound to the browser.

Why both a store record and a cookie: ``state`` travels through the provider
and the address bar, so it names the record but proves nothing. The record
also holds the hash of a random *binding* secret whose value lives only in an
HttpOnly cookie of the browser that started the login. A callback from another
browser (login CSRF, a leaked callback URL) has the state but not the cookie.
The record is popped, so a state (and with it its code) works exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

from gateway.store.base import Store

__all__ = ["LoginState", "LoginStates", "random_token"]


def random_token() -> str:
    return secrets.token_urlsafe(32)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginState:
    provider: str
    nonce: str
    code_verifier: str
    next: str
    binding_hash: str
    created_at: float

    def bound_to(self, binding: str | None) -> bool:
        return binding is not None and hmac.compare_digest(_digest(binding), self.binding_hash)


class LoginStates:
    def __init__(self, store: Store, *, prefix: str, ttl: float) -> None:
        self._store = store
        self._prefix = prefix
        self._ttl = ttl

    async def save(self, state: str, value: LoginState) -> None:
        await self._store.set(self._prefix + _digest(state), json.dumps(asdict(value)), self._ttl)

    async def take(self, state: str) -> LoginState | None:
        """The state's record, removed in the same step (single use)."""
        if not state or len(state) > 256:
            return None
        raw = await self._store.pop(self._prefix + _digest(state))
        return LoginState(**json.loads(raw)) if raw is not None else None

    @staticmethod
    def binding_hash(binding: str) -> str:
        return _digest(binding)
