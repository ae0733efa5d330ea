"""Registration: which account a proof may create (docs/domain.md section 1).

Auth checks the proof itself (hash compare, current invoice, SMS code); the
*kind* of account it creates is policy, decided by ``can_register`` and
``registration_refusal`` rules in portal.polar. This module holds the facts the
rules read (`RegistrationTarget`) and the verdict auth receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.directory.base import Directory
from gateway.principal import Role

__all__ = [
    "PROOF_TYPES",
    "RegistrationTarget",
    "RegistrationVerdict",
    "binding_for",
    "normalize_identifier",
    "resolve_registration_target",
]

PROOF_TYPES = frozenset({"kundenkennwort", "puk", "invoice_number", "sms_tan"})


@dataclass(frozen=True, slots=True)
class RegistrationTarget:
    """What an identifier (customer number or MSISDN) names (Polar class ``RegistrationTarget``)."""

    identifier: str
    is_customer: bool
    is_line: bool
    customer_number: str
    customer_kind: str
    contract_id: str | None = None
    contract_kind: str | None = None
    msisdn: str | None = None
    part: str | None = None
    framework_customer: str | None = None


@dataclass(frozen=True, slots=True)
class RegistrationVerdict:
    allowed: bool
    role: Role | None
    access_level: Literal["full", "restricted"] | None
    bound_customer: str | None
    bound_msisdn: str | None
    reason: str
    hint_url: str | None = None


def normalize_identifier(identifier: str) -> str:
    """Strip blanks and a leading '+' / '00' from an MSISDN; customer numbers pass through."""
    text = "".join(identifier.split())
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00") and len(text) > 9:
        text = text[2:]
    return text


async def resolve_registration_target(directory: Directory, identifier: str) -> RegistrationTarget | None:
    """The facts about what `identifier` names, or None if it names nothing we know."""
    ident = normalize_identifier(identifier)
    if not ident or len(ident) > 64:
        return None
    line = await directory.line(ident) if ident.isdigit() and len(ident) >= 8 else None
    if line is not None:
        customer = await directory.customer(line.customer_number)
        contract = await directory.contract(line.contract_id)
        if customer is None or contract is None:
            return None
        return RegistrationTarget(
            identifier=ident,
            is_customer=False,
            is_line=True,
            customer_number=customer.number,
            customer_kind=customer.kind,
            contract_id=contract.id,
            contract_kind=contract.kind,
            msisdn=line.msisdn,
            part=line.part,
            framework_customer=contract.framework_customer,
        )
    customer = await directory.customer(ident)
    if customer is None:
        return None
    return RegistrationTarget(
        identifier=ident,
        is_customer=True,
        is_line=False,
        customer_number=customer.number,
        customer_kind=customer.kind,
    )


def binding_for(target: RegistrationTarget, role: Role) -> tuple[str | None, str | None]:
    """(bound_customer, bound_msisdn) an account of `role` registered on `target` carries."""
    if role == "line_user":
        return None, target.msisdn
    if role == "customer":
        return target.customer_number, None
    return target.customer_number, target.msisdn
