"""From (Principal, resource_type, resource_id) to the model values Polar decides on.

Rights come from the account's *binding* (docs/domain.md section 6,
"How rights follow from an account's binding"), checked against the directory, never from the request:

- "customer"        → full reach on that customer (holder or authorised person)
- "business_member" → full reach on the Business Member customer of the line
- "split_private"   → full reach on the private customer of a split contract
- "line_user"       → only that one line (Benutzer-Login / SMS-TAN session)

A service client (principal kind "service", a client-credentials token) becomes
a `ServiceClient`: client id, provider and scopes, no reach at all; whatever it
may do is granted to its scopes by the policy (nothing by default).

A binding that does not fit the directory (a framework customer, a line that is
not on a Business Member contract, ...) yields no reach at all: fail closed, and
every request answers not_found. The company (framework) customer has no
account in this portal, so it is never reachable.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.directory.base import Directory
from gateway.policy.model import (
    Account,
    Actor,
    Caller,
    Contract,
    Customer,
    Invoice,
    Line,
    Resource,
    ServiceClient,
    VpnContract,
)
from gateway.principal import Principal
from gateway.routes import RESOURCE_TYPES as ROUTED_RESOURCE_TYPES

__all__ = ["RESOURCE_TYPES", "Resolver", "UnknownResourceType", "service_client"]

#: What a route can name (gateway/routes.py), plus the account a person manages themselves.
RESOURCE_TYPES = ROUTED_RESOURCE_TYPES | {"account"}

#: customer kind a full-reach role must be bound to
_ROLE_CUSTOMER_KINDS = {
    "customer": frozenset({"private", "business"}),
    "business_member": frozenset({"business_member"}),
    "split_private": frozenset({"split_private"}),
}


def service_client(principal: Principal) -> ServiceClient:
    """The policy's view of a client-credentials caller (subject ``client:<client_id>``)."""
    return ServiceClient(
        client_id=principal.subject.removeprefix("client:"),
        provider=principal.provider or "",
        scopes=frozenset(principal.scopes),
    )


class UnknownResourceType(ValueError):
    """The route named a resource type the policy does not know."""


class Resolver:
    """Builds `Actor` and resource values from the directory (async; may raise DirectoryUnavailable)."""

    def __init__(self, directory: Directory, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.clock = clock

    async def actor(self, principal: Principal) -> Caller:
        if principal.kind == "service":
            return service_client(principal)
        customers: frozenset[str] = frozenset()
        own_lines: frozenset[str] = frozenset()
        if principal.kind == "account" and principal.role is not None:
            if principal.role == "line_user":
                if principal.bound_msisdn:
                    line = await self.directory.line(principal.bound_msisdn)
                    if line is not None:
                        own_lines = frozenset({line.msisdn})
            else:
                number = await self._bound_customer(principal)
                if number is not None:
                    customers = frozenset({number})
        return Actor(
            subject=principal.subject,
            kind=principal.kind,
            role=principal.role,
            access_level=principal.access_level,
            step_up_fresh=principal.step_up_fresh(self.clock()),
            customers=customers,
            own_lines=own_lines,
        )

    async def _bound_customer(self, principal: Principal) -> str | None:
        role = principal.role
        kinds = _ROLE_CUSTOMER_KINDS.get(role or "")
        if kinds is None:
            return None
        number = principal.bound_customer
        if role != "customer" and principal.bound_msisdn:
            line = await self.directory.line(principal.bound_msisdn)
            if line is None:
                return None
            if role == "split_private" and line.part != "private":
                return None
            if number is not None and number != line.customer_number:
                return None  # inconsistent binding: fail closed
            number = line.customer_number
        if number is None:
            return None
        customer = await self.directory.customer(number)
        if customer is None or customer.kind not in kinds:
            return None
        return customer.number

    async def resource(
        self, principal: Principal, resource_type: str, resource_id: str | None
    ) -> Resource | None:
        """The resource, or None when it does not exist (the caller answers not_found)."""
        if resource_type not in RESOURCE_TYPES:
            raise UnknownResourceType(resource_type)
        if resource_type == "account":
            return Account(resource_id if resource_id is not None else principal.subject)
        if resource_id is None or resource_id == "" or len(resource_id) > 128:
            return None
        d = self.directory
        if resource_type == "line":
            line = await d.line(resource_id)
            if line is None:
                return None
            return Line(line.msisdn, line.contract_id, line.customer_number, line.part)
        if resource_type == "contract":
            contract = await d.contract(resource_id)
            if contract is None:
                return None
            return Contract(contract.id, contract.customer_number, contract.kind, contract.framework_customer)
        if resource_type == "invoice":
            invoice = await d.invoice(resource_id)
            if invoice is None:
                return None
            return Invoice(
                invoice.number, invoice.contract_id, invoice.customer_number, invoice.part, invoice.current
            )
        if resource_type == "customer":
            customer = await d.customer(resource_id)
            return None if customer is None else Customer(customer.number, customer.kind)
        # "vpn": the same answer whether it exists or not, so no lookup (no existence leak)
        return VpnContract(resource_id)
