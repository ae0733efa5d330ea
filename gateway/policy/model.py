"""The classes Polar sees: frozen facts, O(1) relation checks.

Every value here is a pure function of the principal, its binding and the
directory, computed *before* the policy runs (the resolver builds them). The
policy therefore decides on plain data: a decision is a pure function of
(actor facts, action, resource facts, policy revision), which is what makes the
decision cache correct. Time never enters a decision: the actor carries a
precomputed ``step_up_fresh`` boolean instead of a timestamp.

Relation checks are registered methods doing one set lookup each, so their cost
does not grow with the number of lines of a customer (a list scan in Polar
would: see docs/polar.md).

Polar names (`polar_classes()`): ``User`` (the actor; ``Actor`` is a reserved
Polar name), ``ServiceClient`` (a client-credentials caller), ``Customer``,
``Contract``, ``Line``, ``Invoice``, ``VpnContract``, ``Account`` (the actor's
own login, for manage_own_login) and ``RegistrationTarget`` (see
`registration.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.directory.records import ContractKind, CustomerKind, Part

__all__ = [
    "RESOURCE_CLASSES",
    "Account",
    "Actor",
    "Caller",
    "Contract",
    "Customer",
    "Invoice",
    "Line",
    "Resource",
    "ServiceClient",
    "VpnContract",
    "polar_classes",
]

ResourceType = Literal["line", "contract", "invoice", "customer", "vpn", "account"]


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller as the policy sees it (Polar class ``User``).

    `customers` is the set of customer numbers the actor has *full-contract*
    reach on (holder / authorised person, Business Member, private part of a
    split contract); `own_lines` the lines it may use as a Benutzer-Login or
    SMS-TAN session. Both are derived from the account's binding, never from
    what the request claims.
    """

    subject: str
    kind: str = "account"
    role: str | None = None
    access_level: str = "restricted"
    step_up_fresh: bool = False
    customers: frozenset[str] = field(default_factory=frozenset)
    own_lines: frozenset[str] = field(default_factory=frozenset)

    @property
    def full(self) -> bool:
        """A full session (password account); anything else counts as restricted."""
        return self.access_level == "full"

    @property
    def restricted(self) -> bool:
        return self.access_level != "full"

    def holds_customer(self, customer: Customer) -> bool:
        return customer.number in self.customers

    def holds_contract(self, contract: Contract) -> bool:
        return contract.customer_number in self.customers

    def holds_line(self, line: Line) -> bool:
        return line.customer_number in self.customers

    def uses_line(self, line: Line) -> bool:
        return line.msisdn in self.own_lines

    def holds_invoice(self, invoice: Invoice) -> bool:
        return invoice.customer_number in self.customers

    def holds_customer_number(self, number: str | None) -> bool:
        return number is not None and number in self.customers

    def owns_account(self, account: Account) -> bool:
        return account.subject == self.subject


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A client-credentials caller as the policy sees it (Polar class ``ServiceClient``).

    A machine, not a person: it has no account binding, so it has no relation to
    any customer's data and the policy grants it nothing by default. The only
    facts are who issued its token (`provider`), its `client_id` and the token's
    `scopes`, so a security team can grant a scope an action in Polar without
    any change here. `has_scope` is one set lookup (O(1)), like the relation
    checks of `Actor`.
    """

    client_id: str
    provider: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


#: Whoever the policy decides for: a portal account's `Actor` or a `ServiceClient`.
Caller = Actor | ServiceClient


@dataclass(frozen=True, slots=True)
class Customer:
    number: str
    kind: CustomerKind


@dataclass(frozen=True, slots=True)
class Contract:
    id: str
    customer_number: str
    kind: ContractKind
    framework_customer: str | None = None

    @property
    def is_split(self) -> bool:
        return self.kind == "invoice_split"


@dataclass(frozen=True, slots=True)
class Line:
    msisdn: str
    contract_id: str
    customer_number: str
    part: Part | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    contract_id: str
    customer_number: str
    part: Part | None = None
    current: bool = False


@dataclass(frozen=True, slots=True)
class VpnContract:
    """A VPN contract; only its id (the answer is the same whether it exists or not)."""

    id: str


@dataclass(frozen=True, slots=True)
class Account:
    """A portal login (own-login management is the only action on it)."""

    subject: str


Resource = Customer | Contract | Line | Invoice | VpnContract | Account

#: resource_type (as in config/routes.toml) → model class.
RESOURCE_CLASSES: dict[str, type] = {
    "customer": Customer,
    "contract": Contract,
    "line": Line,
    "invoice": Invoice,
    "vpn": VpnContract,
    "account": Account,
}


def _polar_classes() -> dict[str, type]:
    from gateway.policy.registration import RegistrationTarget

    return {
        "User": Actor,
        "ServiceClient": ServiceClient,
        "Customer": Customer,
        "Contract": Contract,
        "Line": Line,
        "Invoice": Invoice,
        "VpnContract": VpnContract,
        "Account": Account,
        "RegistrationTarget": RegistrationTarget,
    }


def polar_classes() -> dict[str, type]:
    """Every class registered with Polar, by its Polar name (a fresh dict each call)."""
    return _polar_classes()
