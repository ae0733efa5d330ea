"""Policy decision tables (policies/tests/*.yaml) and the in-memory world they run in.

A table names actors (by their account binding, as auth would produce them) and
resources (``line:436641000020``; ids of the demo world of DOMAIN.md section 4,
or of resources the file adds inline under ``world:``), and lists the expected
outcome of each action::

    world:                       # optional: added to the demo world
      customers: [{number: "2000001", name: X, kind: private}]
      contracts: [{id: ct-x, customer: "2000001", kind: private}]
      lines:     [{msisdn: "436649990001", contract: ct-x, customer: "2000001"}]
      invoices:  [{number: RE-X, contract: ct-x, customer: "2000001", current: true}]
    actors:
      anna:    {role: customer, bound_customer: "1000001", second_factor: fresh}
      lukas:   {role: line_user, bound_msisdn: "436641000040"}   # restricted by default
    cases:
      - actor: anna
        resource: line:436641000001
        expect:
          view_usage: allow
          lift_barring: step_up
          view_itemized_bill: deny line_user_scope        # "deny" alone: any reason
          view_invoices: allow parts=private               # visible invoice parts
    registrations:
      - identifier: "436641000020"
        expect: {puk: business_member full, kundenkennwort: refused proof_not_accepted}

Actor keys: role, bound_customer, bound_msisdn, access (full | restricted; default
full, restricted for line_user), second_factor (fresh | stale | none; default
none), kind (account | service), subject; for kind service also scopes (a list)
and provider (a service client's subject defaults to ``client:<name>``). Outcomes: allow,
deny [reason], not_found [reason] (a service client's not_found carries
service_client_not_permitted), step_up.

The in-memory `MemoryDirectory` implements the `Directory` protocol; its methods
never await anything, so the runner drives them synchronously (no event loop),
which lets a reload run the tables in a worker thread.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gateway.directory.records import (
    ContractRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)
from gateway.policy.engine import PolicyEngine
from gateway.policy.registration import PROOF_TYPES, resolve_registration_target
from gateway.policy.resolver import RESOURCE_TYPES, Resolver
from gateway.principal import Principal

__all__ = [
    "DEMO_WORLD",
    "CaseResult",
    "MemoryDirectory",
    "TableError",
    "TestReport",
    "World",
    "demo_world",
    "parse_actor",
    "parse_resource_ref",
    "run_policy_tests",
    "run_sync",
]

T = TypeVar("T")

#: Fixed "now" of decision tables: decisions must not depend on the wall clock.
TABLE_NOW = 1_800_000_000.0

OUTCOMES = frozenset({"allow", "deny", "not_found", "step_up"})


class TableError(Exception):
    """A malformed decision table; the message names the file and the key."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (MemoryDirectory lookups) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("run_sync: the coroutine suspended (not an in-memory directory?)")


# ------------------------------------------------------------------------ the world
@dataclass
class World:
    persons: dict[str, PersonRecord] = field(default_factory=dict)
    customers: dict[str, CustomerRecord] = field(default_factory=dict)
    contracts: dict[str, ContractRecord] = field(default_factory=dict)
    lines: dict[str, LineRecord] = field(default_factory=dict)
    invoices: dict[str, InvoiceRecord] = field(default_factory=dict)
    vpns: dict[str, VpnRecord] = field(default_factory=dict)
    relations: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    kundenkennwort: dict[str, str] = field(default_factory=dict)
    puk: dict[str, str] = field(default_factory=dict)

    def copy(self) -> World:
        return World(
            dict(self.persons),
            dict(self.customers),
            dict(self.contracts),
            dict(self.lines),
            dict(self.invoices),
            dict(self.vpns),
            {p: {k: set(v) for k, v in rel.items()} for p, rel in self.relations.items()},
            dict(self.kundenkennwort),
            dict(self.puk),
        )

    def add(self, data: Mapping[str, Any], where: str = "world") -> World:
        """Add records from the world-file shape (see gateway/directory/world.py); returns self."""
        try:
            for p in data.get("persons", []) or []:
                self.persons[str(p["id"])] = PersonRecord(str(p["id"]), str(p.get("name", p["id"])))
            for c in data.get("customers", []) or []:
                number = str(c["number"])
                self.customers[number] = CustomerRecord(number, str(c.get("name", number)), c["kind"])
                if c.get("kundenkennwort") is not None:
                    self.kundenkennwort[number] = str(c["kundenkennwort"])
                for key, rel in (
                    ("holders", "holder_of"),
                    ("authorised", "authorised_for"),
                    ("members", "member_of"),
                    ("split_private", "split_private_of"),
                    ("admins", "administers"),
                ):
                    for person in c.get(key, []) or []:
                        self.relations.setdefault(str(person), {}).setdefault(rel, set()).add(number)
            for k in data.get("contracts", []) or []:
                fw = k.get("framework")
                self.contracts[str(k["id"])] = ContractRecord(
                    str(k["id"]), str(k["customer"]), k["kind"], None if fw is None else str(fw)
                )
            for ln in data.get("lines", []) or []:
                msisdn = str(ln["msisdn"])
                self.lines[msisdn] = LineRecord(
                    msisdn, str(ln["contract"]), str(ln["customer"]), ln.get("part"), ln.get("user")
                )
                if ln.get("user"):
                    self.relations.setdefault(str(ln["user"]), {}).setdefault("uses_lines", set()).add(msisdn)
                self.puk[msisdn] = str(ln.get("puk", msisdn[-2:] * 4))
            for inv in data.get("invoices", []) or []:
                self.invoices[str(inv["number"])] = InvoiceRecord(
                    str(inv["number"]),
                    str(inv["contract"]),
                    str(inv["customer"]),
                    inv.get("part"),
                    str(inv.get("issued_on", "2026-10-31")),
                    bool(inv.get("current", False)),
                )
            for v in data.get("vpns", []) or []:
                self.vpns[str(v["id"])] = VpnRecord(str(v["id"]), str(v["customer"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise TableError(f"{where}: malformed world entry: missing or bad key {exc}") from None
        return self


def _demo_data() -> dict[str, Any]:
    lines = [
        ("436641000001", "ct-1000001", "1000001", None, "p-anna-huber"),
        ("436641000010", "ct-1000010", "1000010", None, "p-markus-mayr"),
        ("436641000011", "ct-1000010", "1000010", None, None),
        ("436641000020", "ct-1000021", "1000021", None, "p-sophie-wagner"),
        ("436641000030", "ct-1000030", "1000030", "private", "p-thomas-gruber"),
        ("436641000031", "ct-1000030", "1000020", "business", "p-thomas-gruber"),
        ("436641000040", "ct-1000020", "1000020", None, "p-lukas-steiner"),
    ]
    invoices = []
    for suffix, contract, customer, part in (
        ("0001", "ct-1000001", "1000001", None),
        ("0010", "ct-1000010", "1000010", None),
        ("0020", "ct-1000020", "1000020", None),
        ("0021", "ct-1000021", "1000021", None),
        ("0030", "ct-1000030", "1000030", "private"),
        ("0031", "ct-1000030", "1000020", "business"),
    ):
        for prefix, issued, current in (
            ("RE-2026-10", "2026-09-30", False),
            ("RE-2026-11", "2026-10-31", True),
        ):
            invoices.append(
                {
                    "number": prefix + suffix,
                    "contract": contract,
                    "customer": customer,
                    "part": part,
                    "issued_on": issued,
                    "current": current,
                }
            )
    return {
        "persons": [
            {"id": p, "name": p}
            for p in (
                "p-anna-huber",
                "p-markus-mayr",
                "p-eva-lechner",
                "p-sophie-wagner",
                "p-thomas-gruber",
                "p-lukas-steiner",
                "p-martin-berger",
            )
        ],
        "customers": [
            {
                "number": "1000001",
                "name": "Anna Huber",
                "kind": "private",
                "kundenkennwort": "Huber-Kennwort-1",
                "holders": ["p-anna-huber"],
            },
            {
                "number": "1000010",
                "name": "Installateur Mayr KG",
                "kind": "business",
                "kundenkennwort": "Mayr-KG-Kennwort",
                "holders": ["p-markus-mayr"],
                "authorised": ["p-eva-lechner"],
            },
            {
                "number": "1000020",
                "name": "Alpenblick GmbH",
                "kind": "framework",
                "kundenkennwort": "Alpenblick-Kennwort",
                "admins": ["p-martin-berger"],
            },
            {
                "number": "1000021",
                "name": "Sophie Wagner",
                "kind": "business_member",
                "members": ["p-sophie-wagner"],
            },
            {
                "number": "1000030",
                "name": "Thomas Gruber",
                "kind": "split_private",
                "split_private": ["p-thomas-gruber"],
            },
        ],
        "contracts": [
            {"id": "ct-1000001", "customer": "1000001", "kind": "private"},
            {"id": "ct-1000010", "customer": "1000010", "kind": "business"},
            {"id": "ct-1000020", "customer": "1000020", "kind": "company"},
            {"id": "ct-1000021", "customer": "1000021", "kind": "business_member", "framework": "1000020"},
            {"id": "ct-1000030", "customer": "1000030", "kind": "invoice_split", "framework": "1000020"},
        ],
        "lines": [
            {"msisdn": m, "contract": c, "customer": cu, "part": part, "user": user}
            for m, c, cu, part, user in lines
        ],
        "invoices": invoices,
        "vpns": [{"id": "vpn-alpenblick-1", "customer": "1000020"}],
    }


def demo_world() -> World:
    """The demo world of DOMAIN.md section 4 (a fresh copy each call)."""
    return World().add(_demo_data(), "demo world")


DEMO_WORLD = "demo"


class MemoryDirectory:
    """An in-memory `Directory` over a `World` (tests and decision tables only)."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def person(self, person_id: str) -> PersonRecord | None:
        return self.world.persons.get(person_id)

    async def relations(self, person_id: str) -> PersonRelations:
        rel = self.world.relations.get(person_id, {})
        return PersonRelations(
            person_id,
            **{k: frozenset(v) for k, v in rel.items()},
        )

    async def customer(self, number: str) -> CustomerRecord | None:
        return self.world.customers.get(number)

    async def contract(self, contract_id: str) -> ContractRecord | None:
        return self.world.contracts.get(contract_id)

    async def line(self, msisdn: str) -> LineRecord | None:
        return self.world.lines.get(msisdn)

    async def invoice(self, number: str) -> InvoiceRecord | None:
        return self.world.invoices.get(number)

    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]:
        return [i for i in self.world.invoices.values() if i.contract_id == contract_id]

    async def vpn(self, vpn_id: str) -> VpnRecord | None:
        return self.world.vpns.get(vpn_id)

    async def lines_of_customer(self, number: str) -> list[LineRecord]:
        return [ln for ln in self.world.lines.values() if ln.customer_number == number]

    async def contracts_of_customer(self, number: str) -> list[ContractRecord]:
        return [c for c in self.world.contracts.values() if c.customer_number == number]

    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool:
        stored = self.world.kundenkennwort.get(customer_number, "\x00")
        return hmac.compare_digest(stored.encode(), candidate.encode())

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        stored = self.world.puk.get(msisdn, "\x00")
        return hmac.compare_digest(stored.encode(), candidate.encode())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


# ------------------------------------------------------------------ table parsing
_ACTOR_KEYS = frozenset(
    {
        "role",
        "bound_customer",
        "bound_msisdn",
        "access",
        "second_factor",
        "kind",
        "subject",
        "person",
        "scopes",
        "provider",
    }
)
_ROLES = ("customer", "business_member", "split_private", "line_user")


def parse_actor(name: str, spec: Any, where: str, now: float = TABLE_NOW) -> Principal:
    """A Principal from a table's actor entry (also used by `policy explain --actor`)."""
    if not isinstance(spec, Mapping):
        raise TableError(f"{where}: actor {name!r} must be a mapping of role, bound_customer, ...")
    unknown = sorted(set(spec) - _ACTOR_KEYS)
    if unknown:
        raise TableError(
            f"{where}: actor {name!r}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_ACTOR_KEYS))})"
        )
    role = spec.get("role")
    if role is not None and role not in _ROLES:
        raise TableError(f"{where}: actor {name!r}: role must be one of {', '.join(_ROLES)}, got {role!r}")
    default_access = "restricted" if role == "line_user" else "full"
    access = spec.get("access", default_access)
    if access not in ("full", "restricted"):
        raise TableError(f"{where}: actor {name!r}: access must be full or restricted, got {access!r}")
    sf = spec.get("second_factor", "none")
    sf_at = {"fresh": now - 60, "stale": now - 3600, "none": None}
    if sf not in sf_at:
        raise TableError(f"{where}: actor {name!r}: second_factor must be fresh, stale or none, got {sf!r}")
    kind = spec.get("kind", "account")
    if kind not in ("account", "service"):
        raise TableError(f"{where}: actor {name!r}: kind must be account or service, got {kind!r}")
    scopes = spec.get("scopes", [])
    if isinstance(scopes, str):  # `policy explain --actor kind=service,scopes=a+b`
        scopes = [x for x in scopes.replace("+", " ").split() if x]
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
        raise TableError(f"{where}: actor {name!r}: scopes must be a list of strings")
    if kind == "service":
        return Principal(
            subject=str(spec.get("subject", f"client:{name}")),
            kind="service",
            access_level="restricted",
            auth_methods=frozenset({"client_credentials"}),
            provider=str(spec.get("provider", "idp")),
            scopes=frozenset(scopes),
        )
    methods = {"password"} if access == "full" else {"sms_tan"}
    if sf != "none":
        methods.add("totp")
    bc, bm = spec.get("bound_customer"), spec.get("bound_msisdn")
    return Principal(
        subject=str(spec.get("subject", f"acc_{name}")),
        kind=kind,
        person_id=None if spec.get("person") is None else str(spec["person"]),
        access_level=access,
        auth_methods=frozenset(methods),
        second_factor_at=sf_at[sf],
        role=role,
        bound_customer=None if bc is None else str(bc),
        bound_msisdn=None if bm is None else str(bm),
    )


def parse_resource_ref(ref: Any, where: str) -> tuple[str, str | None]:
    """``line:436641000020`` → ("line", "436641000020"); ``account:self`` → ("account", None)."""
    if not isinstance(ref, str) or ":" not in ref:
        raise TableError(f"{where}: resource must look like 'line:436641000020', got {ref!r}")
    rtype, _, rid = ref.partition(":")
    if rtype not in RESOURCE_TYPES:
        raise TableError(
            f"{where}: unknown resource type {rtype!r} (known: {', '.join(sorted(RESOURCE_TYPES))})"
        )
    if not rid:
        raise TableError(f"{where}: resource {ref!r} has no id")
    return rtype, (None if rtype == "account" and rid == "self" else rid)


@dataclass(frozen=True, slots=True)
class Expectation:
    outcome: str
    reason: str | None = None
    parts: frozenset[str] | None = None

    def __str__(self) -> str:
        text = self.outcome
        if self.reason:
            text += f" {self.reason}"
        if self.parts is not None:
            text += " parts=" + ",".join(sorted(self.parts))
        return text


def _parse_expectation(value: Any, where: str) -> Expectation:
    if not isinstance(value, str) or not value.split():
        raise TableError(
            f"{where}: expected 'allow', 'deny [reason]', 'not_found [reason]' or 'step_up', got {value!r}"
        )
    words = value.split()
    outcome, rest = words[0], words[1:]
    if outcome not in OUTCOMES:
        raise TableError(f"{where}: unknown outcome {outcome!r} (allow, deny, not_found, step_up)")
    reason: str | None = None
    parts: frozenset[str] | None = None
    for w in rest:
        if w.startswith("parts="):
            parts = frozenset(p for p in w[6:].split(",") if p)
        elif reason is None and outcome in ("deny", "not_found"):
            reason = w
        else:
            raise TableError(f"{where}: unexpected {w!r} in {value!r}")
    return Expectation(outcome, reason, parts)


# ------------------------------------------------------------------------ running
@dataclass(frozen=True, slots=True)
class CaseResult:
    nodeid: str
    passed: bool
    message: str = ""


@dataclass
class TestReport:
    results: list[CaseResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    __test__ = False  # not a pytest class

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0 and bool(self.results)

    def failure_lines(self) -> list[str]:
        lines = [f"policy tests: {e}" for e in self.errors]
        lines += [f"policy test failed: {r.nodeid}: {r.message}" for r in self.results if not r.passed]
        if not self.results and not self.errors:
            lines.append("policy tests: no test cases found")
        return lines


def _load_yaml(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TableError(f"{path}{pos}: not valid YAML: {problem}") from None
    except OSError as exc:
        raise TableError(f"{path}: cannot read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise TableError(f"{path}: a decision table must be a mapping with actors and cases")
    unknown = sorted(set(data) - {"world", "base", "actors", "cases", "registrations", "description"})
    if unknown:
        raise TableError(
            f"{path}: unknown top-level key {unknown[0]!r} (world, base, actors, cases, registrations)"
        )
    return data


def table_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TableError(f"{path}: no such test file or directory")
    return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])


def run_policy_tests(engine: PolicyEngine, path: str | Path, *, only: Iterable[str] = ()) -> TestReport:
    """Run every decision table under `path` (a file or a directory) against `engine`."""
    started = time.perf_counter()
    report = TestReport()
    selected = list(only)
    try:
        files = table_files(Path(path))
    except TableError as exc:
        report.errors.append(str(exc))
        return report
    for file in files:
        try:
            _run_file(engine, file, report, selected)
        except TableError as exc:
            report.errors.append(str(exc))
    report.seconds = time.perf_counter() - started
    return report


def _run_file(engine: PolicyEngine, file: Path, report: TestReport, only: list[str]) -> None:
    data = _load_yaml(file)
    base = data.get("base", "demo")
    if base not in ("demo", "empty"):
        raise TableError(f"{file}: base must be 'demo' or 'empty', got {base!r}")
    world = demo_world() if base == "demo" else World()
    if data.get("world") is not None:
        if not isinstance(data["world"], Mapping):
            raise TableError(f"{file}: world must be a mapping of customers, contracts, lines, ...")
        world.add(data["world"], f"{file}: world")
    directory = MemoryDirectory(world)
    resolver = Resolver(directory, lambda: TABLE_NOW)
    actors_spec = data.get("actors") or {}
    if not isinstance(actors_spec, Mapping):
        raise TableError(f"{file}: actors must be a mapping name → binding")
    actors = {str(n): parse_actor(str(n), s, f"{file}: actors.{n}") for n, s in actors_spec.items()}
    cases = data.get("cases") or []
    if not isinstance(cases, list):
        raise TableError(f"{file}: cases must be a list")
    # Parse everything first: a malformed table is an error, not a partial run.
    planned: list[tuple[str, Principal, str, str | None, str, Expectation]] = []
    for i, case in enumerate(cases):
        where = f"{file}: cases[{i}]"
        if not isinstance(case, Mapping):
            raise TableError(f"{where}: must be a mapping with actor, resource, expect")
        unknown = sorted(set(case) - {"actor", "resource", "expect", "note"})
        if unknown:
            raise TableError(f"{where}: unknown key {unknown[0]!r} (actor, resource, expect, note)")
        names = case.get("actor")
        names_list = names if isinstance(names, list) else [names]
        for n in names_list:
            if str(n) not in actors:
                raise TableError(f"{where}.actor: unknown actor {n!r} (defined: {', '.join(sorted(actors))})")
        rtype, rid = parse_resource_ref(case.get("resource"), f"{where}.resource")
        expect = case.get("expect")
        if not isinstance(expect, Mapping) or not expect:
            raise TableError(f"{where}.expect: must map actions to outcomes")
        for action, value in expect.items():
            if action not in engine.permissions:
                raise TableError(f"{where}.expect.{action}: unknown action (not a declared permission)")
            exp = _parse_expectation(value, f"{where}.expect.{action}")
            for n in names_list:
                nodeid = f"{file}::{n}::{case.get('resource')}::{action}"
                planned.append((nodeid, actors[str(n)], rtype, rid, str(action), exp))
    for nodeid, principal, rtype, rid, action, exp in planned:
        if only and not any(sel in nodeid for sel in only):
            continue
        actor = run_sync(resolver.actor(principal))
        resource = run_sync(resolver.resource(principal, rtype, rid))
        if resource is None:
            got_outcome, got_reason, got_parts = "not_found", "not_found", None
        else:
            v = engine.decide_uncached(actor, action, resource)
            got_outcome, got_reason, got_parts = v.outcome, v.reason, v.visible_parts
        ok = got_outcome == exp.outcome
        if ok and exp.reason is not None:
            ok = got_reason == exp.reason
        if ok and exp.parts is not None:
            ok = got_parts == exp.parts
        shown = got_reason if got_outcome == "deny" or got_reason != got_outcome else None
        got = Expectation(got_outcome, shown, got_parts)
        report.results.append(CaseResult(nodeid, ok, "" if ok else f"expected {exp}, got {got}"))
    _run_registrations(engine, file, data, directory, report, only)


def _run_registrations(
    engine: PolicyEngine,
    file: Path,
    data: Mapping[str, Any],
    directory: MemoryDirectory,
    report: TestReport,
    only: list[str],
) -> None:
    regs = data.get("registrations") or []
    if not isinstance(regs, list):
        raise TableError(f"{file}: registrations must be a list")
    for i, reg in enumerate(regs):
        where = f"{file}: registrations[{i}]"
        if (
            not isinstance(reg, Mapping)
            or "identifier" not in reg
            or not isinstance(reg.get("expect"), Mapping)
        ):
            raise TableError(f"{where}: must have identifier and expect (proof type → verdict)")
        ident = str(reg["identifier"])
        target = run_sync(resolve_registration_target(directory, ident))
        for proof, value in reg["expect"].items():
            if proof not in PROOF_TYPES:
                raise TableError(
                    f"{where}.expect.{proof}: unknown proof type ({', '.join(sorted(PROOF_TYPES))})"
                )
            words = str(value).split()
            if (
                not words
                or (words[0] != "refused" and len(words) != 2)
                or (words[0] == "refused" and len(words) > 2)
            ):
                raise TableError(f"{where}.expect.{proof}: expected '<role> <access>' or 'refused [reason]'")
            nodeid = f"{file}::register:{ident}::{proof}"
            if only and not any(sel in nodeid for sel in only):
                continue
            if target is None:
                got = "refused unknown_identifier"
            else:
                verdict = engine.can_register(target, proof)
                got = (
                    f"{verdict.role} {verdict.access_level}"
                    if verdict.allowed
                    else f"refused {verdict.reason}"
                )
            want = " ".join(words)
            ok = got == want or (want == "refused" and got.startswith("refused"))
            report.results.append(CaseResult(nodeid, ok, "" if ok else f"expected {want}, got {got}"))
