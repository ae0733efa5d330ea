"""`policy diff OLD NEW`: what a policy change does, cell by cell, before it ships.

Both policies decide every case the project knows: the decision tables
(policies/tests/*.yaml: their `cases` and their `registrations`), the demo world
(every demo person x every routed action x every resource of that type, own and
foreign x full/restricted x with/without a fresh second factor) and N seeded
generated worlds (`gateway.policy.worlds`). Registration is decided too: every
table registration and every line and customer number of the demo world and the
generated worlds x every proof type (`can_register` / `registration_refusal`). The
cells whose outcome or reason differ are grouped by (who, action, relation, old,
new), registration cells by (proof, target, old, new); every cell the NEW policy
decides is also held against the invariants of docs/domain.md section 3
(`gateway.policy.invariants`; for a registration refusal: invariant 6, a known
reason), which is what CI gates on.

Identical policies (the same revision hash) are evaluated once: the report says
"no change" and only the invariants of that one policy are checked.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.directory.world import World
from gateway.policy.engine import PolicyEngine, Verdict
from gateway.policy.invariants import Index, Reach, Violation, cell_violations, is_related, reach
from gateway.policy.model import Line
from gateway.policy.reasons import REASONS, message
from gateway.policy.registration import PROOF_TYPES, RegistrationTarget, resolve_registration_target
from gateway.policy.resolver import Resolver
from gateway.policy.testing import (
    TABLE_NOW,
    TableError,
    memory_directory,
    parse_actor,
    plan_tables,
    run_sync,
    table_world,
)
from gateway.policy.worlds import random_principal, random_world
from gateway.principal import Principal

__all__ = [
    "Change",
    "DiffReport",
    "PolicySourceError",
    "RegistrationChange",
    "diff_policies",
    "read_policy_source",
]

#: Example cells shown (and traced with --explain) per group.
_EXAMPLES = 3

#: Markdown stays below this many characters (GitHub refuses comments over 65 536).
MARKDOWN_LIMIT = 60_000

#: A progress callback: one short line per phase (the CLI prints them on stderr).
Progress = Callable[[str], None]

#: Demo people (docs/domain.md section 4) by their account binding, as `policy explain --actor` knows them.
DemoActors = Mapping[str, Mapping[str, object]]

_GROUP = {
    "customer": "customers",
    "business_member": "business members",
    "split_private": "split-contract private users",
    "line_user": "line users",
    None: "accounts without a binding",
}


class PolicySourceError(Exception):
    """OLD/NEW names neither a file nor a git revision holding the policy."""


def read_policy_source(spec: str, default_path: str) -> tuple[str, str]:
    """(source, label) of a file, ``REV:PATH`` or a bare git revision (then `default_path` at it)."""
    p = Path(spec)
    if p.is_file():
        return p.read_text(encoding="utf-8"), spec
    rev, sep, path = spec.partition(":")
    target = f"{rev}:{path}" if sep else f"{spec}:{default_path}"
    try:
        # git from PATH on the operator's own checkout; the argument is one argv item, never a shell line
        done = subprocess.run(  # noqa: S603
            ["git", "show", target], capture_output=True, text=True, timeout=30, check=False  # noqa: S607
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PolicySourceError(f"{spec}: not a file, and git could not be asked: {exc}") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["unknown revision"])[0]
        raise PolicySourceError(f"{spec}: not a file, and not a git revision with the policy ({why})")
    return done.stdout, target


@dataclass(frozen=True, slots=True)
class Cell:
    """One (principal, action, resource) case and where it comes from."""

    source: str
    who: str
    group: str
    principal: Principal
    resource_type: str
    resource_id: str | None
    action: str
    relation: str


@dataclass(frozen=True, slots=True)
class Change:
    cell: Cell
    old: Verdict
    new: Verdict
    old_rules: tuple[str, ...] = ()
    new_rules: tuple[str, ...] = ()
    #: The resolved facts, kept so `--explain` can trace the cells it shows (and only those).
    facts: tuple[object, object] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RegistrationCell:
    """One (identifier, proof type) registration case and where it comes from."""

    source: str
    identifier: str
    target: str  # "a line of a private contract", "a private customer number", "an unknown identifier"
    proof: str


@dataclass(frozen=True, slots=True)
class RegistrationChange:
    cell: RegistrationCell
    old: str  # "line_user restricted", "refused proof_not_accepted"
    new: str


@dataclass(frozen=True, slots=True)
class Breach:
    cell: Cell | RegistrationCell
    verdict: Verdict | str
    violation: Violation


@dataclass
class DiffReport:
    old_label: str
    new_label: str
    old_revision: str
    new_revision: str
    cells: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    registration_cells: int = 0
    registration_by_source: dict[str, int] = field(default_factory=dict)
    registration_changes: list[RegistrationChange] = field(default_factory=list)
    #: OLD and NEW have the same revision: evaluated once, nothing can change.
    identical: bool = False
    seconds: float = 0.0

    def groups(self) -> list[tuple[str, list[Change]]]:
        """Changes grouped: "line users: view_itemized_bill on own line: deny line_user_scope → allow"."""
        grouped: dict[str, list[Change]] = {}
        for c in self.changes:
            where = f"{c.cell.relation} {c.cell.resource_type}"
            key = f"{c.cell.group}: {c.cell.action} on {where}: {verdict_text(c.old)} → {verdict_text(c.new)}"
            grouped.setdefault(key, []).append(c)
        return sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    def registration_groups(self) -> list[tuple[str, list[RegistrationChange]]]:
        """"registration: sms_tan on a line of a private contract: line_user restricted → customer full"."""
        grouped: dict[str, list[RegistrationChange]] = {}
        for c in self.registration_changes:
            key = f"registration: {c.cell.proof} on {c.cell.target}: {c.old} → {c.new}"
            grouped.setdefault(key, []).append(c)
        return sorted(grouped.items(), key=lambda kv: (-len(kv[1]), kv[0]))

    def breached(self) -> dict[int, list[Breach]]:
        out: dict[int, list[Breach]] = {}
        for b in self.breaches:
            out.setdefault(b.violation.invariant, []).append(b)
        return dict(sorted(out.items()))


def verdict_text(v: Verdict) -> str:
    """"allow", "step_up", "deny line_user_scope", plus visible parts and the MBS pointer."""
    text = v.outcome if v.outcome in ("allow", "step_up") else f"{v.outcome} {v.reason}"
    if v.visible_parts is not None:
        text += " parts=" + (",".join(sorted(v.visible_parts)) or "none")
    if v.hint_url:
        text += f" hint={v.hint_url}"
    return text


def _same(a: Verdict, b: Verdict) -> bool:
    return (a.outcome, a.reason, a.visible_parts, a.hint_url) == (b.outcome, b.reason, b.visible_parts, b.hint_url)


def _session(p: Principal, now: float) -> str:
    if p.kind == "service":
        return "client credentials"
    factor = "fresh second factor" if p.step_up_fresh(now) else "no fresh second factor"
    return f"{p.access_level}, {factor}"


def _group(p: Principal) -> str:
    return "service clients" if p.kind == "service" else _GROUP.get(p.role, str(p.role))


class _Scope:
    """One world: its directory, resolver and oracle index; evaluates cells of both policies."""

    def __init__(self, world: World, report: DiffReport, engines: tuple[PolicyEngine, PolicyEngine],
                 kinds: Mapping[str, str], explain: bool, mbs: str) -> None:
        self.world = world
        self.index = Index.of(world)
        self.directory = memory_directory(world)
        self.resolver = Resolver(self.directory, lambda: TABLE_NOW)
        self.report, self.engines, self.kinds, self.explain, self.mbs = report, engines, kinds, explain, mbs
        self.identical = engines[0].revision == engines[1].revision
        self._actors: dict[Principal, object] = {}

    def refs(self, types: Iterable[str]) -> list[tuple[str, str | None]]:
        idx = self.index
        ids: dict[str, list[str | None]] = {
            "line": [*idx.lines, "436699999999"],
            "contract": list(idx.contracts),
            "invoice": list(idx.invoices),
            "customer": list(idx.customers),
            "vpn": [*idx.vpns, "vpn-unknown"],
            "account": [None, "acc_other"],
        }
        return [(t, i) for t in types for i in ids.get(t, [])]

    def registration_identifiers(self) -> list[str]:
        """Every line and customer number of the world, plus one unknown identifier."""
        return [*self.index.lines, *self.index.customers, "436699999999"]

    def relation(self, p: Principal, r: Reach, resource: object) -> str:
        if isinstance(resource, Line) and resource.msisdn in r.own_lines:
            return "own"
        return "own" if is_related(p, r, resource) else "foreign"

    def run(self, source: str, who: str, p: Principal, rtype: str, rid: str | None, actions: Iterable[str]) -> None:
        old, new = self.engines
        actor = self._actors.get(p)
        if actor is None:
            actor = self._actors[p] = run_sync(self.resolver.actor(p))
        resource = run_sync(self.resolver.resource(p, rtype, rid))
        if resource is None:
            return  # an unknown id is not_found before any policy runs: the same for both
        r = reach(p, self.index)
        relation = self.relation(p, r, resource)
        fresh = p.step_up_fresh(TABLE_NOW)
        report = self.report
        for action in actions:
            a = old.decide(actor, action, resource)  # type: ignore[arg-type]
            b = a if self.identical else new.decide(actor, action, resource)  # type: ignore[arg-type]
            report.cells += 1
            report.by_source[source] = report.by_source.get(source, 0) + 1
            cell: Cell | None = None
            if not self.identical and not _same(a, b):
                cell = Cell(source, who, _group(p), p, rtype, rid, action, relation)
                report.changes.append(Change(cell, a, b, facts=(actor, resource) if self.explain else None))
            for v in cell_violations(p, r, self.index, rtype, resource, action, b, kinds=self.kinds,
                                     fresh=fresh, business_station_url=self.mbs):
                cell = cell or Cell(source, who, _group(p), p, rtype, rid, action, relation)
                report.breaches.append(Breach(cell, b, v))

    def register(self, source: str, identifier: str, proofs: Iterable[str]) -> None:
        """Both policies' registration verdicts for `identifier` x `proofs`, compared."""
        old, new = self.engines
        target = run_sync(resolve_registration_target(self.directory, identifier))
        where = _target_text(target)
        report = self.report
        for proof in proofs:
            report.registration_cells += 1
            report.registration_by_source[source] = report.registration_by_source.get(source, 0) + 1
            if target is None:
                continue  # unknown identifier: refused before any policy runs, the same for both
            a = _registration_text(old, target, proof)
            b = a if self.identical else _registration_text(new, target, proof)
            cell: RegistrationCell | None = None
            if a != b:
                cell = RegistrationCell(source, identifier, where, proof)
                report.registration_changes.append(RegistrationChange(cell, a, b))
            reason = b.split()[1] if b.startswith("refused ") else None
            if reason is not None and not (reason in REASONS and message(reason, "de") != message(reason, "en")):
                cell = cell or RegistrationCell(source, identifier, where, proof)
                report.breaches.append(
                    Breach(cell, b, Violation(6, f"reason {reason!r} has no German and English text"))
                )


def _registration_text(engine: PolicyEngine, target: RegistrationTarget, proof: str) -> str:
    v = engine.can_register(target, proof)
    return f"{v.role} {v.access_level}" if v.allowed else f"refused {v.reason}"


def _target_text(target: RegistrationTarget | None) -> str:
    if target is None:
        return "an unknown identifier"
    if target.is_line:
        part = f" ({target.part} part)" if target.part else ""
        return f"a line of {_a(str(target.contract_kind))} contract{part}"
    return f"{_a(target.customer_kind)} customer number"


def _a(word: str) -> str:
    return f"{'an' if word[:1] in tuple('aeiou') else 'a'} {word}"


def _explain(engine: PolicyEngine, actor: object, action: str, resource: object) -> tuple[str, ...]:
    ex = engine.explain(actor, action, resource)  # type: ignore[arg-type]
    return ex.rules + ex.notes


def _strictest(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    order = ["business_station", "read", "change", "protective", "critical"]
    kinds = dict(old)
    for action, kind in new.items():
        prev = kinds.get(action)
        if prev is None or (kind in order and prev in order and order.index(kind) > order.index(prev)):
            kinds[action] = kind
    return kinds


def diff_policies(
    old: PolicyEngine,
    new: PolicyEngine,
    *,
    old_label: str,
    new_label: str,
    tables: str | Path | None,
    route_actions: Sequence[tuple[str, str]],
    demo: World | None,
    demo_actors: DemoActors,
    worlds: int = 20,
    principals_per_world: int = 8,
    seed: int = 0,
    explain: bool = False,
    business_station_url: str = "",
    progress: Progress | None = None,
) -> DiffReport:
    """Evaluate both policies over tables, the demo world and `worlds` generated worlds.

    Access cells and registration cells alike; with the same revision on both sides, once."""
    started = time.perf_counter()
    report = DiffReport(old_label, new_label, old.revision, new.revision)
    report.identical = old.revision == new.revision
    engines = (old, new)
    kinds = _strictest(old.permissions, new.permissions)
    say = progress or (lambda _line: None)
    per_type: dict[str, list[str]] = {}
    for action, rtype in route_actions:
        if action not in per_type.setdefault(rtype, []):
            per_type[rtype].append(action)
    if "manage_own_login" in new.permissions or "manage_own_login" in old.permissions:
        per_type.setdefault("account", ["manage_own_login"])
    proofs = sorted(PROOF_TYPES)

    def phase(name: str) -> None:
        say(f"{name}: {report.cells} cells, {report.registration_cells} registrations, "
            f"{time.perf_counter() - started:.1f} s")

    if tables is not None:
        for plan in plan_tables(tables, {**old.permissions, **new.permissions}):
            scope = _Scope(plan.world, report, engines, kinds, explain, business_station_url)
            name = f"table {plan.file.name}"
            for case in plan.cases:
                who = f"{case.nodeid.split('::')[1]} ({_session(case.principal, TABLE_NOW)})"
                if case.action in old.permissions and case.action in new.permissions:
                    scope.run(name, who, case.principal, case.resource_type, case.resource_id, [case.action])
            for ident, table_proofs in _table_registrations(plan.file, plan.data):
                scope.register(name, ident, table_proofs)
        phase("tables")

    if demo is not None:
        scope = _Scope(demo, report, engines, kinds, explain, business_station_url)
        refs = scope.refs(per_type)
        for name, spec in demo_actors.items():
            for p in _sessions(name, spec):
                who = f"{name} ({_session(p, TABLE_NOW)})"
                for rtype, rid in refs:
                    scope.run("demo world", who, p, rtype, rid, per_type[rtype])
        for ident in scope.registration_identifiers():
            scope.register("demo world", ident, proofs)
        phase("demo world")

    rng = random.Random(seed)
    for n in range(worlds):
        data = random_world(rng)
        scope = _Scope(table_world(data, f"generated world {n}"), report, engines, kinds, explain,
                       business_station_url)
        refs = scope.refs(per_type)
        source = f"generated world {n} (seed {seed})"
        for _ in range(principals_per_world):
            p = random_principal(rng, data, TABLE_NOW)
            who = f"{p.role or p.kind} bound to {p.bound_customer or p.bound_msisdn or 'nothing'}"
            for rtype, rid in refs:
                scope.run(source, f"{who} ({_session(p, TABLE_NOW)})", p, rtype, rid, per_type[rtype])
        for ident in scope.registration_identifiers():
            scope.register(source, ident, proofs)
        if (n + 1) % 5 == 0 or n + 1 == worlds:
            phase(f"generated worlds {n + 1}/{worlds}")
    if explain:  # trace only the example cells the report shows: a trace costs far more than a decision
        shown: dict[int, Change] = {}
        for _title, changes in report.groups():
            for c in changes[:_EXAMPLES]:
                if c.facts is not None:
                    actor, resource = c.facts
                    shown[id(c)] = replace(c, old_rules=_explain(old, actor, c.cell.action, resource),
                                           new_rules=_explain(new, actor, c.cell.action, resource))
        report.changes = [shown.get(id(c), c) for c in report.changes]
    report.seconds = time.perf_counter() - started
    return report


def _table_registrations(file: Path, data: Mapping[str, object]) -> list[tuple[str, list[str]]]:
    """(identifier, proof types) of a table's `registrations` (shape errors as `policy test` reports them)."""
    regs = data.get("registrations") or []
    if not isinstance(regs, list):
        raise TableError(f"{file}: registrations must be a list")
    out: list[tuple[str, list[str]]] = []
    for i, reg in enumerate(regs):
        expect = reg.get("expect") if isinstance(reg, Mapping) else None
        if not isinstance(reg, Mapping) or "identifier" not in reg or not isinstance(expect, Mapping):
            raise TableError(f"{file}: registrations[{i}]: must have identifier and expect (proof type → verdict)")
        for proof in expect:
            if proof not in PROOF_TYPES:
                raise TableError(
                    f"{file}: registrations[{i}].expect.{proof}: unknown proof type ({', '.join(sorted(PROOF_TYPES))})"
                )
        out.append((str(reg["identifier"]), [str(proof) for proof in expect]))
    return out


def _sessions(name: str, spec: Mapping[str, object]) -> Iterator[Principal]:
    for access in ("full", "restricted"):
        for factor in ("fresh", "none"):
            yield parse_actor(name, {**spec, "access": access, "second_factor": factor}, "demo actors")


# ------------------------------------------------------------------------ rendering


def render(report: DiffReport, fmt: str = "text", *, explain: bool = False, limit: int = MARKDOWN_LIMIT) -> str:
    """The report as plain text (a terminal) or Markdown (a pull-request comment).

    Markdown stays under `limit` characters: examples and their explanations are left out
    (counted, "… N more") once the budget is spent; the invariant section always fits."""
    md = fmt == "markdown"
    bold = "**" if md else ""
    head: list[str] = []
    old = f"{report.old_label} ({report.old_revision[:12]})"
    title = f"policy diff {old} → {report.new_label} ({report.new_revision[:12]})"
    head.append(f"### {title}" if md else title)
    sources = ", ".join(f"{k}: {v}" for k, v in _source_totals(report.by_source).items())
    regs = ", ".join(f"{k}: {v}" for k, v in _source_totals(report.registration_by_source).items())
    head.append(f"{report.cells} cells evaluated ({sources}); {report.registration_cells} registration cells ({regs})")
    head.append("")
    tail = _render_breaches(report, md)
    budget = limit - _size(head) - _size(tail) - 400 if md else None

    body: list[str] = []
    groups: list[tuple[str, Sequence[Change | RegistrationChange]]] = [
        *report.groups(), *report.registration_groups()
    ]
    if report.identical:
        body.append("no change: OLD and NEW are the same policy (same revision), evaluated once")
    elif not groups:
        body.append("no change: both policies decide every cell alike (access and registration)")
    else:
        ncells = len(report.changes) + len(report.registration_changes)
        body.append(f"{bold}{ncells} cells change in {len(groups)} groups{bold}")
        body.append("")
        left_out = 0
        groups_left = 0
        for gi, (group, changes) in enumerate(groups):
            line = f"- `{group}` ({len(changes)} cells)" if md else f"{group}  ({len(changes)} cells)"
            if budget is not None and _size(body) + len(line) + 200 > budget:
                groups_left = len(groups) - gi
                left_out += sum(len(c) for _t, c in groups[gi:])
                break
            body.append(line)
            shown = 0
            for c in changes[:_EXAMPLES]:
                lines = _example_lines(c, md, explain)
                if budget is not None and _size(body) + _size(lines) + 200 > budget:
                    break
                body.extend(lines)
                shown += 1
            if len(changes) > shown:
                left_out += len(changes) - shown
                more = f"… {len(changes) - shown} more"
                body.append(f"  - {more}" if md else f"    {more}")
        if groups_left:
            body.append("")
            body.append(f"… truncated: {groups_left} more groups not shown (Markdown size limit)")
        if md:
            body.append("")
            body.append(f"{left_out} of {ncells} changed cells not shown as examples"
                        + (" (run the diff locally for all)" if left_out else ""))
    out = [*head, *body, "", *tail]
    return "\n".join(out) + "\n"


def _size(lines: Sequence[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _clip(text: str, width: int = 400) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _example_lines(c: Change | RegistrationChange, md: bool, explain: bool) -> list[str]:
    if isinstance(c, RegistrationChange):
        line = f"{c.cell.source}: register {c.cell.identifier} with {c.cell.proof}"
        return [f"  - {line}" if md else f"    {line}"]
    ref = f"{c.cell.resource_type}:{c.cell.resource_id or 'self'}"
    line = f"{c.cell.source}: {c.cell.who} {ref}"
    out = [f"  - {line}" if md else f"    {line}"]
    if explain:
        for side, rules in (("old", c.old_rules), ("new", c.new_rules)):
            for rule in rules or ("(no rule matched)",):
                out.append(f"      - {side}: `{_clip(rule) if md else rule}`" if md else f"        {side}: {rule}")
    return out


def _render_breaches(report: DiffReport, md: bool) -> list[str]:
    out: list[str] = []
    breached = report.breached()
    if not breached:
        out.append("invariants: the new policy keeps all six (docs/domain.md section 3)")
        return out
    out.append(f"{'**' if md else ''}INVARIANTS BROKEN by the new policy{'**' if md else ''}")
    for _number, breaches in breached.items():
        title = breaches[0].violation.title
        out.append(f"- {title} ({len(breaches)} cells)" if md else f"{title}  ({len(breaches)} cells)")
        for b in breaches[:_EXAMPLES]:
            verdict = b.verdict if isinstance(b.verdict, str) else verdict_text(b.verdict)
            got = f"{verdict} ({b.violation.detail})"
            if isinstance(b.cell, RegistrationCell):
                line = f"{b.cell.source}: register {b.cell.identifier} with {b.cell.proof}: {got}"
            else:
                ref = f"{b.cell.resource_type}:{b.cell.resource_id or 'self'}"
                line = f"{b.cell.source}: {b.cell.who} {b.cell.action} {ref}: {got}"
            out.append(f"  - {_clip(line)}" if md else f"    {line}")
        if len(breaches) > _EXAMPLES:
            more = f"… {len(breaches) - _EXAMPLES} more"
            out.append(f"  - {more}" if md else f"    {more}")
    return out


def _source_totals(by_source: Mapping[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for source, n in by_source.items():
        kind = source
        if source.startswith("table "):
            kind = "tables"
        elif source.startswith("generated"):
            kind = "generated worlds"
        totals[kind] = totals.get(kind, 0) + n
    return totals
