"""Policy decision tables (policies/tests/*.yaml) and the in-memory world they run in.

A table names actors (by their account binding, as auth would produce them) and
resources (``line:436641000020``; ids of the demo world of docs/domain.md section 4,
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

The demo world is demo/directory.yaml (`demo_world_path`); an inline ``world:`` is
the directory's world-file shape with a few defaults (`table_world`), checked by
`gateway.directory.world.parse_world`. Tables run against the directory's
`MemoryDirectory`; its lookups never await anything, so the runner drives them
synchronously (no event loop), which lets a reload run the tables in a worker thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gateway.directory.memory import MemoryDirectory
from gateway.directory.proofs import ProofHasher, ProofHashers
from gateway.directory.world import RELATION_KEYS, World, WorldError, load_world, parse_world
from gateway.policy.engine import PolicyEngine
from gateway.policy.registration import PROOF_TYPES, resolve_registration_target
from gateway.policy.resolver import RESOURCE_TYPES, Resolver
from gateway.principal import Principal

__all__ = [
    "DEMO_WORLD",
    "CaseResult",
    "TableCase",
    "TableError",
    "TablePlan",
    "TestReport",
    "demo_world",
    "demo_world_path",
    "memory_directory",
    "parse_actor",
    "parse_resource_ref",
    "plan_tables",
    "run_policy_tests",
    "run_sync",
    "table_hashers",
    "table_world",
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
DEMO_WORLD = "demo"

#: Keys of the world-file shape (gateway/directory/world.py) that hold records.
_WORLD_LISTS = ("persons", "customers", "contracts", "lines", "invoices", "vpns")
#: Keys whose values are ids: a table may leave small numbers unquoted, as it always could.
_ID_KEYS = frozenset({"id", "number", "customer", "contract", "framework", "msisdn", "user", "puk"})
_RECORD_PATH = re.compile(r"\b(" + "|".join(_WORLD_LISTS) + r")\[(\d+)\]")


def demo_world_path() -> Path:
    """demo/directory.yaml, the one demo world: shipped in the `demo` package (package data),
    else found under the current directory (a checkout without the package installed)."""
    packaged = resources.files("demo").joinpath("directory.yaml")
    candidates = [Path(str(packaged))]
    candidates.append(Path.cwd() / "demo" / "directory.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TableError(f"demo world not found (looked at {', '.join(str(c) for c in candidates)})")


def demo_world() -> World:
    """The demo world of docs/domain.md section 4, read from demo/directory.yaml."""
    try:
        return load_world(demo_world_path())
    except WorldError as exc:
        raise TableError(str(exc)) from None


def table_hashers() -> ProofHashers:
    """Cheap argon2 profiles for the worlds of decision tables and `policy explain`.

    They never check a proof, so hashing the world's Kundenkennwörter at the real cost
    (~50 ms each) would only slow every test run and every policy reload."""
    cheap = ProofHasher(time_cost=1, memory_cost=8, parallelism=1)
    return ProofHashers(kundenkennwort=cheap, puk=cheap)


def memory_directory(world: World) -> MemoryDirectory:
    """The directory's `MemoryDirectory` over `world`, with `table_hashers()`."""
    return MemoryDirectory(world, hashers=table_hashers())


def _id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _file_shape(key: str, item: Any) -> Any:
    """One inline record in the world-file shape: the defaults tables have always had."""
    if not isinstance(item, Mapping):
        return item  # parse_world names the problem
    out = {k: _id(v) if k in _ID_KEYS else v for k, v in item.items()}
    if key == "customers" and "name" not in out and isinstance(out.get("number"), str):
        out["name"] = out["number"]
    elif key == "persons" and "name" not in out and isinstance(out.get("id"), str):
        out["name"] = out["id"]
    elif key == "lines" and "puk" not in out and "puk_hash" not in out:
        msisdn = out.get("msisdn")
        if isinstance(msisdn, str) and len(msisdn) >= 2:
            out["puk"] = msisdn[-2:] * 4  # every demo line's PUK: its last two digits four times
    elif key == "invoices" and "issued_on" not in out:
        out["issued_on"] = "2026-10-31"
    return out


def _referenced_persons(data: Mapping[str, Any]) -> list[str]:
    people: list[str] = []
    for c in data.get("customers") or []:
        if isinstance(c, Mapping):
            for rel in RELATION_KEYS:
                value = c.get(rel)
                people += [p for p in value if isinstance(p, str)] if isinstance(value, list) else []
    for ln in data.get("lines") or []:
        if isinstance(ln, Mapping) and isinstance(ln.get("user"), str):
            people.append(ln["user"])
    return people


def table_world(
    inline: Mapping[str, Any] | None,
    where: str,
    base: Mapping[str, Any] | None = None,
    *,
    prefix: str = "world.",
) -> World:
    """A directory `World` from a table's ``world:`` (added to `base`, the raw demo file, if given).

    The inline shape is the world-file shape with defaults: a customer's or person's name
    is its id, a line's PUK its last two digits four times, an invoice is issued
    2026-10-31, and people named in relations or as line users need not be listed.
    Problems are `parse_world`'s, with paths into the table's ``world:`` (`prefix`)."""
    base = base or {}
    inline = inline or {}
    merged: dict[str, Any] = {k: v for k, v in inline.items() if k not in _WORLD_LISTS}
    offsets: dict[str, int] = {}
    for key in _WORLD_LISTS:
        extra = inline.get(key) or []
        if not isinstance(extra, list):
            raise TableError(f"{where}: {prefix}{key}: expected a list, got {type(extra).__name__}")
        own = list(base.get(key) or [])
        offsets[key] = len(own)
        merged[key] = own + [_file_shape(key, item) for item in extra]
    known = {p.get("id") for p in merged["persons"] if isinstance(p, Mapping)}
    for person in _referenced_persons(merged):
        if person not in known:
            known.add(person)
            merged["persons"].append({"id": person, "name": person})

    def in_table(m: re.Match[str]) -> str:
        key, index = m.group(1), int(m.group(2))
        if index < offsets[key]:
            return f"{DEMO_WORLD} world {key}[{index}]"
        return f"{prefix}{key}[{index - offsets[key]}]"

    try:
        return parse_world(merged, where)
    except WorldError as exc:
        problems = [_RECORD_PATH.sub(in_table, p) for p in exc.problems]
        raise TableError(f"{where}: " + "; ".join(problems)) from None


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
    demo = _DemoWorld()
    for file in files:
        try:
            _run_file(engine, file, report, selected, demo)
        except TableError as exc:
            report.errors.append(str(exc))
    report.seconds = time.perf_counter() - started
    return report


class _DemoWorld:
    """demo/directory.yaml, read at most once per run (checked, and raw for inline additions)."""

    def __init__(self) -> None:
        self._world: World | None = None
        self._data: Mapping[str, Any] | None = None

    def world(self) -> World:
        if self._world is None:
            self._world = demo_world()
        return self._world

    def data(self) -> Mapping[str, Any]:
        if self._data is None:
            self.world()  # checked first: a broken demo file is reported as such
            self._data = yaml.safe_load(demo_world_path().read_text(encoding="utf-8"))
        return self._data


@dataclass(frozen=True, slots=True)
class TableCase:
    """One (actor, resource, action) cell of a decision table and what it expects."""

    nodeid: str
    principal: Principal
    resource_type: str
    resource_id: str | None
    action: str
    expect: Expectation


@dataclass(frozen=True, slots=True)
class TablePlan:
    """A parsed decision table: its world (as a directory) and its cases."""

    file: Path
    world: World
    directory: MemoryDirectory
    cases: list[TableCase]
    data: Mapping[str, Any]


def plan_tables(path: str | Path, permissions: Mapping[str, str]) -> list[TablePlan]:
    """Every decision table under `path`, parsed (raises TableError on a malformed one).

    `policy diff` evaluates two policies over these cells; the runner below checks them."""
    demo = _DemoWorld()
    return [_plan_file(permissions, file, demo) for file in table_files(Path(path))]


def _plan_file(permissions: Mapping[str, str], file: Path, demo: _DemoWorld) -> TablePlan:
    data = _load_yaml(file)
    base = data.get("base", "demo")
    if base not in ("demo", "empty"):
        raise TableError(f"{file}: base must be 'demo' or 'empty', got {base!r}")
    inline = data.get("world")
    if inline is not None and not isinstance(inline, Mapping):
        raise TableError(f"{file}: world must be a mapping of customers, contracts, lines, ...")
    if inline is None:
        world = demo.world() if base == "demo" else World()
    else:
        world = table_world(inline, str(file), demo.data() if base == "demo" else None)
    directory = memory_directory(world)
    actors_spec = data.get("actors") or {}
    if not isinstance(actors_spec, Mapping):
        raise TableError(f"{file}: actors must be a mapping name → binding")
    actors = {str(n): parse_actor(str(n), s, f"{file}: actors.{n}") for n, s in actors_spec.items()}
    cases = data.get("cases") or []
    if not isinstance(cases, list):
        raise TableError(f"{file}: cases must be a list")
    # Parse everything first: a malformed table is an error, not a partial run.
    planned: list[TableCase] = []
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
            if action not in permissions:
                raise TableError(f"{where}.expect.{action}: unknown action (not a declared permission)")
            exp = _parse_expectation(value, f"{where}.expect.{action}")
            for n in names_list:
                nodeid = f"{file}::{n}::{case.get('resource')}::{action}"
                planned.append(TableCase(nodeid, actors[str(n)], rtype, rid, str(action), exp))
    return TablePlan(file, world, directory, planned, data)


def _run_file(engine: PolicyEngine, file: Path, report: TestReport, only: list[str], demo: _DemoWorld) -> None:
    plan = _plan_file(engine.permissions, file, demo)
    directory, data = plan.directory, plan.data
    resolver = Resolver(directory, lambda: TABLE_NOW)
    for case in plan.cases:
        nodeid, principal, rtype, rid = case.nodeid, case.principal, case.resource_type, case.resource_id
        action, exp = case.action, case.expect
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
