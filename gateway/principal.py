"""Who is asking: the value authentication produces and authorization consumes.

`auth/` builds a `Principal`; `policy/` turns it (plus directory facts) into the
actor Polar sees. Neither side imports the other: this module is the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AccessLevel = Literal["full", "restricted"]
PrincipalKind = Literal["account", "service"]

#: What an account was registered (or linked) as; decided by the policy's
#: can_register rules from the identifier and the proof given:
#: "customer"        Kundenkennwort of a customer number: holder or authorised person (full)
#: "business_member" PUK / current invoice of a Business Member line (full on that customer)
#: "split_private"   PUK / current invoice of the private line of an invoice-split contract
#: "line_user"       SMS-TAN to a line: Benutzer-Login (restricted to that one line)
Role = Literal["customer", "business_member", "split_private", "line_user"]

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
    #: The account's binding: the role it was registered as, the customer number
    #: (role "customer") and/or the line (other roles, and every SMS-TAN session).
    role: Role | None = None
    bound_customer: str | None = None
    bound_msisdn: str | None = None
    session_id: str | None = None
    provider: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    def step_up_fresh(self, now: float) -> bool:
        """True when a second factor was given within the step-up window."""
        if self.second_factor_at is None:
            return False
        return 0 <= now - self.second_factor_at <= STEP_UP_WINDOW_SECONDS
