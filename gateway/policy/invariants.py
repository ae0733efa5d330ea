"""The six invariants of docs/domain.md section 3 as a check of one decided cell.

An oracle independent of the resolver: the actor's reach is computed from the world's
records and the account binding (the team contract), then the verdict the policy gave
for (principal, action, resource) is held against the invariants. `policy diff` runs it
over every cell it evaluates and fails (exit 1) on a violation of the new policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.directory.records import ContractRecord, CustomerRecord, InvoiceRecord, LineRecord, VpnRecord
from gateway.directory.world import World
from gateway.policy.engine import Verdict
from gateway.policy.model import Account, Contract, Customer, Invoice, Line
from gateway.policy.reasons import REASONS, message
from gateway.principal import Principal

__all__ = ["INVARIANTS", "RESTRICTED_MAY", "Index", "Reach", "Violation", "cell_violations", "reach"]

#: docs/domain.md section 3, "Invariants", by number.
INVARIANTS: Mapping[int, str] = {
    1: "a restricted session never performs a change beyond set_barring, block_sim, manage_own_login",
    2: "no relation answers not_found (never 403), a relation never not_found",
    3: "the private and the business part of a split contract never cross",
    4: "VPN actions are denied for everyone with the My Business Station pointer",
    5: "a critical action needs a fresh second factor (else step_up)",
    6: "every refusal carries a known reason with German and English text",
}
RESTRICTED_MAY = frozenset({"set_barring", "block_sim", "manage_own_login"})
_CHANGE_KINDS = frozenset({"change", "critical", "protective"})


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: int
    detail: str

    @property
    def title(self) -> str:
        return f"invariant {self.invariant}: {INVARIANTS[self.invariant]}"


@dataclass(frozen=True)
class Index:
    """The world's records by id: what the oracle reads."""

    customers: dict[str, CustomerRecord]
    contracts: dict[str, ContractRecord]
    lines: dict[str, LineRecord]
    invoices: dict[str, InvoiceRecord]
    vpns: dict[str, VpnRecord]

    @classmethod
    def of(cls, world: World) -> Index:
        return cls(
            {c.record.number: c.record for c in world.customers},
            {k.id: k for k in world.contracts},
            {x.record.msisdn: x.record for x in world.lines},
            {i.number: i for i in world.invoices},
            {v.id: v for v in world.vpns},
        )


@dataclass(frozen=True, slots=True)
class Reach:
    """Whose resources a principal reaches, computed from the world (not by the resolver)."""

    customers: frozenset[str]
    own_lines: frozenset[str]


_NONE = Reach(frozenset(), frozenset())
_KINDS = {
    "customer": {"private", "business"},
    "business_member": {"business_member"},
    "split_private": {"split_private"},
}


def reach(p: Principal, world: Index) -> Reach:
    if p.kind != "account" or p.role is None:
        return _NONE
    if p.role == "line_user":
        return Reach(frozenset(), frozenset({p.bound_msisdn}) if p.bound_msisdn in world.lines else frozenset())
    number = p.bound_customer
    if p.role != "customer" and p.bound_msisdn:
        line = world.lines.get(p.bound_msisdn)
        if line is None or (p.role == "split_private" and line.part != "private"):
            return _NONE
        if number is not None and number != line.customer_number:
            return _NONE
        number = line.customer_number
    c = world.customers.get(number or "")
    return Reach(frozenset({c.number}) if c is not None and c.kind in _KINDS[p.role] else frozenset(), frozenset())


def customer_of(resource: object) -> str | None:
    if isinstance(resource, Customer):
        return resource.number
    if isinstance(resource, (Contract, Line, Invoice)):
        return resource.customer_number
    return None


def is_related(p: Principal, r: Reach, resource: object) -> bool:
    return (
        customer_of(resource) in r.customers
        or (isinstance(resource, Line) and resource.msisdn in r.own_lines)
        or (isinstance(resource, Account) and resource.subject == p.subject and p.kind == "account")
    )


def cell_violations(
    p: Principal,
    r: Reach,
    world: Index,
    resource_type: str,
    resource: object,
    action: str,
    v: Verdict,
    *,
    kinds: Mapping[str, str],
    fresh: bool,
    business_station_url: str,
) -> list[Violation]:
    """Violations of the six invariants by verdict `v` (empty when it keeps them all).

    `kinds` maps actions to their kind (read, change, protective, critical, ...): pass the
    strictest of the policies compared, so reclassifying an action cannot hide a violation."""
    out: list[Violation] = []
    if v.outcome != "allow" and not (v.reason in REASONS and message(v.reason, "de") != message(v.reason, "en")):
        out.append(Violation(6, f"reason {v.reason!r} has no German and English text"))
    if resource_type == "vpn":
        if (v.outcome, v.reason, v.hint_url) != ("deny", "vpn_in_business_station", business_station_url):
            out.append(Violation(4, f"answered {v.outcome} {v.reason} (hint {v.hint_url!r})"))
        return out
    related = is_related(p, r, resource)
    if (v.outcome == "not_found") == related:
        out.append(Violation(2, f"{'related' if related else 'unrelated'} caller answered {v.outcome} {v.reason}"))
    kind = kinds.get(action, "")
    if p.access_level == "restricted" and kind in _CHANGE_KINDS and action not in RESTRICTED_MAY:
        if v.outcome not in ("deny", "not_found"):
            out.append(Violation(1, f"restricted session answered {v.outcome} for {action} ({kind})"))
        elif related and v.reason != "restricted_session":
            out.append(Violation(1, f"restricted session refused with {v.reason}, not restricted_session"))
    if kind == "critical":
        if not fresh and v.outcome == "allow":
            out.append(Violation(5, f"{action} allowed without a fresh second factor"))
        full_reach = related and p.access_level == "full" and customer_of(resource) in r.customers
        if full_reach and not fresh and v.outcome != "step_up":
            out.append(Violation(5, f"{action} without a fresh second factor answered {v.outcome}, not step_up"))
    if isinstance(resource, (Line, Invoice)) and resource.part is not None:
        contract = world.contracts.get(resource.contract_id)
        if contract is not None:
            private_side = contract.customer_number in r.customers
            business_lines = {
                m for m, ln in world.lines.items() if ln.contract_id == contract.id and ln.part == "business"
            }
            company_side = bool(r.own_lines & business_lines)
            crossing = (resource.part == "business" and private_side and not company_side) or (
                resource.part == "private" and company_side and not private_side
            )
            if crossing and v.outcome != "not_found":
                out.append(Violation(3, f"the other side's {resource.part} part answered {v.outcome}"))
    if isinstance(resource, Contract) and resource.is_split and v.outcome == "allow":
        if v.visible_parts != frozenset({"private"}):
            shown = sorted(v.visible_parts) if v.visible_parts is not None else "all"
            out.append(Violation(3, f"split contract shows parts {shown}"))
    return out
