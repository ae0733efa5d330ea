"""The decision the gateway acts on (allow → forward, not_found → 404, ...).

`Decision` is the contract with the pipeline; `outcome` maps to HTTP in
one place outside this package (policy knows no HTTP):
allow → forward; not_found → 404; deny → 403 with `reason`; step_up → 401 with
an RFC 9470 challenge; unavailable → 503 (the directory could not answer).
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "DecisionIds", "Outcome", "new_decision_id"]

Outcome = Literal["allow", "deny", "not_found", "step_up", "unavailable"]


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str  # reason code, e.g. "restricted_session", "vpn_in_business_station"
    decision_id: str
    policy_revision: str  # sha256 of the policy source
    hint_url: str | None = None  # VPN → My Business Station
    visible_parts: frozenset[str] | None = None  # contract invoice list: which parts the backend may show

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


class DecisionIds:
    """Random, unguessable decision ids (returned to clients as X-Decision-Id).

    The randomness is read from the OS 256 ids at a time: one system call per id
    was a measurable share of a cached decision.
    """

    __slots__ = ("__weakref__", "_next", "_pool")

    _BATCH = 256
    _SIZE = 12

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0
        # A forked worker must never hand out ids its parent (or a sibling) drew already.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _drop_pool(ref))

    def __call__(self) -> str:
        start = self._next
        if start >= len(self._pool):
            self._pool = os.urandom(self._SIZE * self._BATCH)
            start = 0
        self._next = start + self._SIZE
        return "dec_" + self._pool[start : start + self._SIZE].hex()


def _drop_pool(ref: weakref.ref[DecisionIds]) -> None:
    ids = ref()
    if ids is not None:
        ids._pool = b""
        ids._next = 0


def new_decision_id() -> str:
    """A random, unguessable id (returned to clients as X-Decision-Id)."""
    return "dec_" + os.urandom(12).hex()
