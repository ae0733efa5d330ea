"""Who is asking: the value authentication produces and authorization consumes.

`auth/` builds a `Principal`; `policy/` turns it (plus directory facts) into the
actor Polar sees. Neither side imports the other: this module is the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AccessLevel = Literal["full", "restricted"]
PrincipalKind = Literal["account", "service"]

#: Authentication methods as recorded on a session (and sent as X-Portal-Auth-Methods).
#: "password", "totp", "sms_tan", "oidc", "bearer_jwt", "client_credentials".
SECOND_FACTORS = frozenset({"totp", "sms_tan"})

#: A second factor counts as "recent" for step-up actions for this many seconds.
STEP_UP_WINDOW_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    `subject` is stable and opaque (account id such as ``acc_3f2a...`` or
    ``client:<client_id>`` for a service client); it is what backends see.
    `second_factor_at` is the epoch time of the last TOTP / SMS-TAN proof of
    this session (login or step-up); the policy gets a boolean computed from it
    with an injected clock, never the clock itself.
    """

    subject: str
    kind: PrincipalKind = "account"
    login: str | None = None
    person_id: str | None = None
    access_level: AccessLevel = "restricted"
    auth_methods: frozenset[str] = field(default_factory=frozenset)
    second_factor_at: float | None = None
    bound_msisdn: str | None = None
    session_id: str | None = None
    provider: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    def step_up_fresh(self, now: float) -> bool:
        """True when a second factor was given within the step-up window."""
        if self.second_factor_at is None:
            return False
        return 0 <= now - self.second_factor_at <= STEP_UP_WINDOW_SECONDS
