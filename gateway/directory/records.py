"""Directory facts: frozen records that every Directory implementation returns.

These are plain data; `policy/model.py` turns them into the classes Polar sees.
Ids are strings: customer numbers ("1000021"), contract ids ("ct-1000021"),
MSISDNs as E.164 digits without "+" ("436641000020"), invoice numbers
("RE-2026-110021"), VPN ids ("vpn-alpenblick-1"), person ids ("p-sophie-wagner").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CustomerKind = Literal["private", "business", "business_member", "split_private", "framework"]
ContractKind = Literal["private", "business", "business_member", "invoice_split", "company"]
Part = Literal["private", "business"]


@dataclass(frozen=True, slots=True)
class PersonRecord:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    number: str
    name: str
    kind: CustomerKind


@dataclass(frozen=True, slots=True)
class ContractRecord:
    id: str
    customer_number: str
    kind: ContractKind
    #: For business_member / invoice_split / company contracts: the company customer
    #: whose framework the contract belongs to (e.g. Alpenblick GmbH, "1000020").
    framework_customer: str | None = None


@dataclass(frozen=True, slots=True)
class LineRecord:
    msisdn: str
    contract_id: str
    #: The customer the line belongs to (for a split business part: the company).
    customer_number: str
    #: "private" / "business" for the two parts of an invoice-split contract, else None.
    part: Part | None = None
    #: The person who uses the line (company phone, split parts, own lines).
    user_person_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    number: str
    contract_id: str
    #: The customer billed (for a split contract: the private customer or the company).
    customer_number: str
    part: Part | None
    issued_on: str  # ISO date
    current: bool


@dataclass(frozen=True, slots=True)
class VpnRecord:
    id: str
    customer_number: str


@dataclass(frozen=True, slots=True)
class PersonRelations:
    """Every relation one person has; sets so that checks are O(1)."""

    person_id: str
    holder_of: frozenset[str] = field(default_factory=frozenset)  # customer numbers
    authorised_for: frozenset[str] = field(default_factory=frozenset)  # customer numbers
    member_of: frozenset[str] = field(default_factory=frozenset)  # Business Member customers
    split_private_of: frozenset[str] = field(default_factory=frozenset)  # private-part customers
    uses_lines: frozenset[str] = field(default_factory=frozenset)  # MSISDNs (company phone, split parts)
    administers: frozenset[str] = field(default_factory=frozenset)  # company customers (MBS only)
