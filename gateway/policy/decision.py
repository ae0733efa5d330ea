"""The decision the gateway acts on (allow → forward, not_found → 404, ...).

`Decision` is the contract with the lead's pipeline; `outcome` maps to HTTP in
one place outside this package (policy knows no HTTP):
allow → forward; not_found → 404; deny → 403 with `reason`; step_up → 401 with
an RFC 9470 challenge; unavailable → 503 (the directory could not answer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

__all__ = ["Decision", "Outcome", "new_decision_id"]

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


def new_decision_id() -> str:
    """A random, unguessable id (returned to clients as X-Decision-Id)."""
    return "dec_" + os.urandom(12).hex()
