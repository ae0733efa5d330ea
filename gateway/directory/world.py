"""A directory world as a file (YAML or JSON): its schema, parsed into checked records.

The file is what operators and the demo write (``demo/directory.yaml``); every mistake is
reported with its path in the file, e.g. ``lines[3].contract: unknown contract 'ct-9'``,
and all mistakes are collected, not only the first. Shape (all ids are strings; quote
numbers in YAML, or a PUK like 01010101 would lose its zeros)::

    version: 1
    persons:   [{id, name}]
    customers: [{number, name, kind, kundenkennwort | kundenkennwort_hash,
                 holders: [person], authorised: [person], members: [person],
                 split_private: [person], admins: [person]}]
    contracts: [{id, customer, kind, framework}]
    lines:     [{msisdn, contract, customer, part, user, puk | puk_hash}]
    invoices:  [{number, contract, customer, part, issued_on, current}]
    vpns:      [{id, customer}]

Plaintext proofs (``kundenkennwort``, ``puk``) are hashed by the importer; a prepared export
may carry argon2id hashes instead (``*_hash``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from gateway.directory.proofs import is_argon2id_hash
from gateway.directory.records import (
    ContractKind,
    ContractRecord,
    CustomerKind,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    Part,
    PersonRecord,
    VpnRecord,
)

__all__ = ["RELATION_KEYS", "World", "WorldCustomer", "WorldError", "WorldLine", "load_world", "parse_world"]

CUSTOMER_KINDS = ("private", "business", "business_member", "split_private", "framework")
CONTRACT_KINDS = ("private", "business", "business_member", "invoice_split", "company")
PARTS = ("private", "business")
#: File key on a customer → relation stored in the directory.
RELATION_KEYS = {
    "holders": "holder",
    "authorised": "authorised",
    "members": "member",
    "split_private": "split_private",
    "admins": "admin",
}
MSISDN_RE = re.compile(r"^[1-9][0-9]{6,14}$")
PUK_RE = re.compile(r"^[0-9]{8}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class WorldError(Exception):
    """The world file is invalid; `problems` lists every ``path: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} problem(s):\n{shown}{more}")


@dataclass(frozen=True, slots=True)
class WorldCustomer:
    record: CustomerRecord
    kundenkennwort: str | None = field(default=None, repr=False)
    kundenkennwort_hash: str | None = field(default=None, repr=False)
    #: (relation, person id) pairs, relation in holder/authorised/member/split_private/admin.
    relations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class WorldLine:
    record: LineRecord
    puk: str | None = field(default=None, repr=False)
    puk_hash: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class World:
    persons: tuple[PersonRecord, ...] = ()
    customers: tuple[WorldCustomer, ...] = ()
    contracts: tuple[ContractRecord, ...] = ()
    lines: tuple[WorldLine, ...] = ()
    invoices: tuple[InvoiceRecord, ...] = ()
    vpns: tuple[VpnRecord, ...] = ()


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def table(self, item: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> bool:
        if not isinstance(item, Mapping):
            self.fail(path, f"expected a mapping, got {_kind(item)}")
            return False
        ok = True
        for key in item:
            if key not in required and key not in optional:
                known = ", ".join((*required, *optional))
                self.fail(f"{path}.{key}", f"unknown key (known: {known})")
                ok = False
        for key in required:
            if key not in item:
                self.fail(f"{path}.{key}", "required")
                ok = False
        return ok

    def string(self, item: Mapping[str, Any], key: str, path: str, *, optional: bool = False,
               pattern: re.Pattern[str] | None = None, what: str = "") -> str | None:
        value = item.get(key)
        where = f"{path}.{key}"
        if value is None:
            if not optional and key in item:
                self.fail(where, "must not be empty")
            return None
        if not isinstance(value, str):
            hint = " (quote it: YAML reads unquoted digits as a number)" if isinstance(value, int) else ""
            self.fail(where, f"expected a string, got {_kind(value)}{hint}")
            return None
        if not value.strip():
            self.fail(where, "must not be empty")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(where, f"not a valid {what or key}: {_short(value)}")
            return None
        return value

    def choice(self, item: Mapping[str, Any], key: str, path: str, allowed: tuple[str, ...],
               *, optional: bool = False) -> str | None:
        value = item.get(key)
        if value is None and optional:
            return None
        if value not in allowed:
            self.fail(f"{path}.{key}", f"must be one of {', '.join(allowed)}, got {_short(value)}")
            return None
        return cast(str, value)

    def listing(self, data: Mapping[str, Any], key: str) -> list[Any]:
        value = data.get(key, [])
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {_kind(value)}")
            return []
        return value

    def unique(self, seen: dict[str, str], value: str | None, path: str, what: str) -> None:
        if value is None:
            return
        if value in seen:
            self.fail(path, f"duplicate {what} {value!r} (first at {seen[value]})")
        else:
            seen[value] = path


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_world(data: Any, source: str = "<world>") -> World:
    """Check `data` (the decoded file) and build a `World`; raise `WorldError` listing all problems."""
    c = _Checker()
    if not isinstance(data, Mapping):
        raise WorldError(source, [f"<top>: expected a mapping (persons, customers, ...), got {_kind(data)}"])
    top = ("version", "persons", "customers", "contracts", "lines", "invoices", "vpns")
    for key in data:
        if key not in top:
            c.fail(str(key), f"unknown key (known: {', '.join(top)})")
    if data.get("version", 1) != 1:
        c.fail("version", f"unsupported version {_short(data.get('version'))} (this gateway reads 1)")

    persons: dict[str, str] = {}
    person_records: list[PersonRecord] = []
    for i, item in enumerate(c.listing(data, "persons")):
        path = f"persons[{i}]"
        if not c.table(item, path, ("id", "name"), ()):
            continue
        pid = c.string(item, "id", path, pattern=ID_RE, what="person id")
        name = c.string(item, "name", path)
        c.unique(persons, pid, f"{path}.id", "person")
        if pid and name:
            person_records.append(PersonRecord(id=pid, name=name))

    def ref(item: Mapping[str, Any], key: str, path: str, known: Mapping[str, Any], what: str,
            optional: bool = False) -> str | None:
        value = c.string(item, key, path, optional=optional)
        if value is not None and value not in known:
            c.fail(f"{path}.{key}", f"unknown {what} {value!r}")
            return None
        return value

    customers: dict[str, str] = {}
    customer_kinds: dict[str, str] = {}
    world_customers: list[WorldCustomer] = []
    customer_items = c.listing(data, "customers")
    cust_keys = ("kundenkennwort", "kundenkennwort_hash", *RELATION_KEYS)
    valid_numbers: dict[int, str] = {}
    for i, item in enumerate(customer_items):  # first pass: numbers, so later refs resolve
        path = f"customers[{i}]"
        if isinstance(item, Mapping) and "number" in item:
            number = c.string(item, "number", path, pattern=ID_RE, what="customer number")
            c.unique(customers, number, f"{path}.number", "customer")
            if number:
                valid_numbers[i] = number
                if isinstance(item.get("kind"), str):
                    customer_kinds[number] = item["kind"]
    for i, item in enumerate(customer_items):
        path = f"customers[{i}]"
        if not c.table(item, path, ("number", "name", "kind"), cust_keys):
            continue
        number = valid_numbers.get(i)
        name = c.string(item, "name", path)
        kind = c.choice(item, "kind", path, CUSTOMER_KINDS)
        kk = c.string(item, "kundenkennwort", path, optional=True)
        kk_hash = c.string(item, "kundenkennwort_hash", path, optional=True)
        if kk and kk_hash:
            c.fail(f"{path}.kundenkennwort_hash", "give kundenkennwort or kundenkennwort_hash, not both")
        if kk_hash and not is_argon2id_hash(kk_hash):
            c.fail(f"{path}.kundenkennwort_hash", "not an argon2id hash ($argon2id$...)")
        relations: list[tuple[str, str]] = []
        for key, relation in RELATION_KEYS.items():
            people = item.get(key, [])
            if people is None:
                continue
            if not isinstance(people, list):
                c.fail(f"{path}.{key}", f"expected a list of person ids, got {_kind(people)}")
                continue
            for j, person in enumerate(people):
                where = f"{path}.{key}[{j}]"
                if not isinstance(person, str):
                    c.fail(where, f"expected a person id, got {_kind(person)}")
                elif person not in persons:
                    c.fail(where, f"unknown person {person!r}")
                elif (relation, person) in relations:
                    c.fail(where, f"person {person!r} listed twice")
                else:
                    relations.append((relation, person))
        if number and name and kind:
            world_customers.append(WorldCustomer(
                record=CustomerRecord(number=number, name=name, kind=cast(CustomerKind, kind)),
                kundenkennwort=kk, kundenkennwort_hash=kk_hash, relations=tuple(relations),
            ))

    contracts: dict[str, str] = {}
    contract_records: dict[str, ContractRecord] = {}
    for i, item in enumerate(c.listing(data, "contracts")):
        path = f"contracts[{i}]"
        if not c.table(item, path, ("id", "customer", "kind"), ("framework",)):
            continue
        cid = c.string(item, "id", path, pattern=ID_RE, what="contract id")
        c.unique(contracts, cid, f"{path}.id", "contract")
        customer = ref(item, "customer", path, customers, "customer")
        kind = c.choice(item, "kind", path, CONTRACT_KINDS)
        framework = ref(item, "framework", path, customers, "customer", optional=True)
        if framework is not None and customer_kinds.get(framework) != "framework":
            c.fail(f"{path}.framework", f"customer {framework!r} is not of kind framework")
        if kind in ("business_member", "invoice_split") and framework is None and "framework" not in item:
            c.fail(f"{path}.framework", f"required for a {kind} contract (the company customer)")
        if cid and customer and kind and cid not in contract_records:
            contract_records[cid] = ContractRecord(
                id=cid, customer_number=customer, kind=cast(ContractKind, kind), framework_customer=framework
            )

    lines: dict[str, str] = {}
    world_lines: list[WorldLine] = []
    for i, item in enumerate(c.listing(data, "lines")):
        path = f"lines[{i}]"
        if not c.table(item, path, ("msisdn", "contract", "customer"), ("part", "user", "puk", "puk_hash")):
            continue
        msisdn = c.string(item, "msisdn", path, pattern=MSISDN_RE, what="MSISDN (E.164 digits, no '+')")
        c.unique(lines, msisdn, f"{path}.msisdn", "line")
        contract_id = ref(item, "contract", path, contracts, "contract")
        customer = ref(item, "customer", path, customers, "customer")
        part = c.choice(item, "part", path, PARTS, optional=True)
        user = ref(item, "user", path, persons, "person", optional=True)
        puk = c.string(item, "puk", path, optional=True, pattern=PUK_RE, what="PUK (8 digits)")
        puk_hash = c.string(item, "puk_hash", path, optional=True)
        if puk and puk_hash:
            c.fail(f"{path}.puk_hash", "give either puk or puk_hash, not both")
        if puk_hash and not is_argon2id_hash(puk_hash):
            c.fail(f"{path}.puk_hash", "not an argon2id hash ($argon2id$...)")
        contract = contract_records.get(contract_id or "")
        if contract is not None:
            if (part is not None) != (contract.kind == "invoice_split"):
                c.fail(f"{path}.part", "required exactly for lines of an invoice_split contract"
                       if part is None else f"only lines of an invoice_split contract have a part "
                       f"(contract {contract.id!r} is {contract.kind})")
            expected = (contract.framework_customer or contract.customer_number) if part == "business" \
                else contract.customer_number
            if customer is not None and customer != expected:
                c.fail(f"{path}.customer", f"must be {expected!r} (the customer of contract {contract.id!r}"
                       + (" part business: its framework company)" if part == "business" else ")"))
        if msisdn and contract_id and customer:
            world_lines.append(WorldLine(
                record=LineRecord(msisdn=msisdn, contract_id=contract_id, customer_number=customer,
                                  part=cast(Part | None, part), user_person_id=user),
                puk=puk, puk_hash=puk_hash,
            ))

    invoices: dict[str, str] = {}
    invoice_records: list[InvoiceRecord] = []
    current_of: dict[tuple[str, str | None], str] = {}
    for i, item in enumerate(c.listing(data, "invoices")):
        path = f"invoices[{i}]"
        if not c.table(item, path, ("number", "contract", "customer", "issued_on"), ("part", "current")):
            continue
        number = c.string(item, "number", path, pattern=ID_RE, what="invoice number")
        c.unique(invoices, number, f"{path}.number", "invoice")
        contract_id = ref(item, "contract", path, contracts, "contract")
        customer = ref(item, "customer", path, customers, "customer")
        part = c.choice(item, "part", path, PARTS, optional=True)
        issued = _date(c, item.get("issued_on"), f"{path}.issued_on")
        current = item.get("current", False)
        if not isinstance(current, bool):
            c.fail(f"{path}.current", f"expected true or false, got {_short(current)}")
            current = False
        contract = contract_records.get(contract_id or "")
        if contract is not None and (part is not None) != (contract.kind == "invoice_split"):
            c.fail(f"{path}.part", "required exactly for invoices of an invoice_split contract")
        if current and contract_id:
            key = (contract_id, part)
            if key in current_of:
                which = f"contract {contract_id!r}" + (f" part {part}" if part else "")
                c.fail(f"{path}.current", f"{which} already has a current invoice at {current_of[key]}")
            else:
                current_of[key] = path
        if number and contract_id and customer and issued:
            invoice_records.append(InvoiceRecord(
                number=number, contract_id=contract_id, customer_number=customer,
                part=cast(Part | None, part), issued_on=issued, current=current,
            ))

    vpns: dict[str, str] = {}
    vpn_records: list[VpnRecord] = []
    for i, item in enumerate(c.listing(data, "vpns")):
        path = f"vpns[{i}]"
        if not c.table(item, path, ("id", "customer"), ()):
            continue
        vid = c.string(item, "id", path, pattern=ID_RE, what="VPN id")
        c.unique(vpns, vid, f"{path}.id", "VPN")
        customer = ref(item, "customer", path, customers, "customer")
        if vid and customer:
            vpn_records.append(VpnRecord(id=vid, customer_number=customer))

    if c.problems:
        raise WorldError(source, c.problems)
    return World(
        persons=tuple(person_records),
        customers=tuple(world_customers),
        contracts=tuple(contract_records.values()),
        lines=tuple(world_lines),
        invoices=tuple(invoice_records),
        vpns=tuple(vpn_records),
    )


def _date(c: _Checker, value: Any, path: str) -> str | None:
    if isinstance(value, dt.datetime):
        c.fail(path, "expected a date (YYYY-MM-DD), got a date and time")
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    c.fail(path, f"expected a date YYYY-MM-DD, got {_short(value)}")
    return None


def load_world(path: str | Path) -> World:
    """Read a ``.yaml``/``.yml``/``.json`` world file and check it (`WorldError` on any problem)."""
    p = Path(path)
    source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorldError(source, ["<file>: not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorldError(source, [f"<file>: cannot read: {exc}"]) from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise WorldError(source, [f"{where}: not valid JSON: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else "<file>"
        problem = getattr(exc, "problem", None) or str(exc)
        raise WorldError(source, [f"{where}: not valid YAML: {problem}"]) from None
    return parse_world(data, source)
