"""`policy diff OLD NEW`: what a policy change does, cell by cell, before it ships.

Both policies decide every case the project knows: the decision tables
(policies/tests/*.yaml), the demo world (every demo person x every routed action x
every resource of that type, own and foreign x full/restricted x with/without a
fresh second factor) and N seeded generated worlds (`gateway.policy.worlds`). The
cells whose outcome or reason differ are grouped by (who, action, relation, old,
new); every cell the NEW policy decides is also held against the six invariants of
docs/domain.md section 3 (`gateway.policy.invariants`), which is what CI gates on.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.directory.world import World
from gateway.policy.engine import PolicyEngine, Verdict
from gateway.policy.invariants import Index, Reach, Violation, cell_violations, is_related, reach
from gateway.policy.model import Line
from gateway.policy.resolver import Resolver
from gateway.policy.testing import TABLE_NOW, memory_directory, parse_actor, plan_tables, run_sync, table_world
from gateway.policy.worlds import random_principal, random_world
from gateway.principal import Principal

__all__ = ["Change", "DiffReport", "PolicySourceError", "diff_policies", "read_policy_source"]

#: Example cells shown (and traced with --explain) per group.
_EXAMPLES = 3

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
class Breach:
    cell: Cell
    verdict: Verdict
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

    def groups(self) -> list[tuple[str, list[Change]]]:
        """Changes grouped: "line users: view_itemized_bill on own line: deny line_user_scope → allow"."""
        grouped: dict[str, list[Change]] = {}
        for c in self.changes:
            where = f"{c.cell.relation} {c.cell.resource_type}"
            key = f"{c.cell.group}: {c.cell.action} on {where}: {verdict_text(c.old)} → {verdict_text(c.new)}"
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
        self.resolver = Resolver(memory_directory(world), lambda: TABLE_NOW)
        self.report, self.engines, self.kinds, self.explain, self.mbs = report, engines, kinds, explain, mbs

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

    def relation(self, p: Principal, r: Reach, resource: object) -> str:
        if isinstance(resource, Line) and resource.msisdn in r.own_lines:
            return "own"
        return "own" if is_related(p, r, resource) else "foreign"

    def run(self, source: str, who: str, p: Principal, rtype: str, rid: str | None, actions: Iterable[str]) -> None:
        old, new = self.engines
        actor = run_sync(self.resolver.actor(p))
        resource = run_sync(self.resolver.resource(p, rtype, rid))
        if resource is None:
            return  # an unknown id is not_found before any policy runs: the same for both
        r = reach(p, self.index)
        relation = self.relation(p, r, resource)
        fresh = p.step_up_fresh(TABLE_NOW)
        report = self.report
        for action in actions:
            a, b = old.decide(actor, action, resource), new.decide(actor, action, resource)
            report.cells += 1
            report.by_source[source] = report.by_source.get(source, 0) + 1
            cell: Cell | None = None
            if not _same(a, b):
                cell = Cell(source, who, _group(p), p, rtype, rid, action, relation)
                report.changes.append(Change(cell, a, b, facts=(actor, resource) if self.explain else None))
            for v in cell_violations(p, r, self.index, rtype, resource, action, b, kinds=self.kinds,
                                     fresh=fresh, business_station_url=self.mbs):
                cell = cell or Cell(source, who, _group(p), p, rtype, rid, action, relation)
                report.breaches.append(Breach(cell, b, v))


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
) -> DiffReport:
    """Evaluate both policies over tables, the demo world and `worlds` generated worlds."""
    report = DiffReport(old_label, new_label, old.revision, new.revision)
    engines = (old, new)
    kinds = _strictest(old.permissions, new.permissions)
    per_type: dict[str, list[str]] = {}
    for action, rtype in route_actions:
        if action not in per_type.setdefault(rtype, []):
            per_type[rtype].append(action)
    if "manage_own_login" in new.permissions or "manage_own_login" in old.permissions:
        per_type.setdefault("account", ["manage_own_login"])

    if tables is not None:
        for plan in plan_tables(tables, {**old.permissions, **new.permissions}):
            scope = _Scope(plan.world, report, engines, kinds, explain, business_station_url)
            name = f"table {plan.file.name}"
            for case in plan.cases:
                who = f"{case.nodeid.split('::')[1]} ({_session(case.principal, TABLE_NOW)})"
                if case.action in old.permissions and case.action in new.permissions:
                    scope.run(name, who, case.principal, case.resource_type, case.resource_id, [case.action])

    if demo is not None:
        scope = _Scope(demo, report, engines, kinds, explain, business_station_url)
        refs = scope.refs(per_type)
        for name, spec in demo_actors.items():
            for p in _sessions(name, spec):
                who = f"{name} ({_session(p, TABLE_NOW)})"
                for rtype, rid in refs:
                    scope.run("demo world", who, p, rtype, rid, per_type[rtype])

    rng = random.Random(seed)
    for n in range(worlds):
        data = random_world(rng)
        scope = _Scope(table_world(data, f"generated world {n}"), report, engines, kinds, explain,
                       business_station_url)
        refs = scope.refs(per_type)
        for _ in range(principals_per_world):
            p = random_principal(rng, data, TABLE_NOW)
            who = f"{p.role or p.kind} bound to {p.bound_customer or p.bound_msisdn or 'nothing'}"
            for rtype, rid in refs:
                scope.run(f"generated world {n} (seed {seed})", f"{who} ({_session(p, TABLE_NOW)})", p,
                          rtype, rid, per_type[rtype])
    if explain:  # trace only the example cells the report shows: a trace costs far more than a decision
        shown: dict[int, Change] = {}
        for _title, changes in report.groups():
            for c in changes[:_EXAMPLES]:
                if c.facts is not None:
                    actor, resource = c.facts
                    shown[id(c)] = replace(c, old_rules=_explain(old, actor, c.cell.action, resource),
                                           new_rules=_explain(new, actor, c.cell.action, resource))
        report.changes = [shown.get(id(c), c) for c in report.changes]
    return report


def _sessions(name: str, spec: Mapping[str, object]) -> Iterator[Principal]:
    for access in ("full", "restricted"):
        for factor in ("fresh", "none"):
            yield parse_actor(name, {**spec, "access": access, "second_factor": factor}, "demo actors")


# ------------------------------------------------------------------------ rendering


def render(report: DiffReport, fmt: str = "text", *, explain: bool = False) -> str:
    """The report as plain text (a terminal) or Markdown (a pull-request comment)."""
    md = fmt == "markdown"
    out: list[str] = []
    sources = ", ".join(f"{k}: {v}" for k, v in _source_totals(report).items())
    old = f"{report.old_label} ({report.old_revision[:12]})"
    head = f"policy diff {old} → {report.new_label} ({report.new_revision[:12]})"
    out.append(f"### {head}" if md else head)
    out.append(f"{report.cells} cells evaluated ({sources})")
    out.append("")
    groups = report.groups()
    if not groups:
        out.append("no change: both policies decide every cell alike")
    else:
        bold = "**" if md else ""
        out.append(f"{bold}{len(report.changes)} cells change in {len(groups)} groups{bold}")
        out.append("")
        for title, changes in groups:
            out.append(f"- `{title}` ({len(changes)} cells)" if md else f"{title}  ({len(changes)} cells)")
            for c in changes[:_EXAMPLES]:
                ref = f"{c.cell.resource_type}:{c.cell.resource_id or 'self'}"
                line = f"{c.cell.source}: {c.cell.who} {ref}"
                out.append(f"  - {line}" if md else f"    {line}")
                if explain:
                    for side, rules in (("old", c.old_rules), ("new", c.new_rules)):
                        for rule in rules or ("(no rule matched)",):
                            out.append(f"      - {side}: `{rule}`" if md else f"        {side}: {rule}")
            if len(changes) > _EXAMPLES:
                more = f"... {len(changes) - _EXAMPLES} more"
                out.append(f"  - {more}" if md else f"    {more}")
    out.append("")
    breached = report.breached()
    if not breached:
        out.append("invariants: the new policy keeps all six (docs/domain.md section 3)")
    else:
        out.append(f"{'**' if md else ''}INVARIANTS BROKEN by the new policy{'**' if md else ''}")
        for _number, breaches in breached.items():
            title = breaches[0].violation.title
            out.append(f"- {title} ({len(breaches)} cells)" if md else f"{title}  ({len(breaches)} cells)")
            for b in breaches[:_EXAMPLES]:
                ref = f"{b.cell.resource_type}:{b.cell.resource_id or 'self'}"
                got = f"{verdict_text(b.verdict)} ({b.violation.detail})"
                line = f"{b.cell.source}: {b.cell.who} {b.cell.action} {ref}: {got}"
                out.append(f"  - {line}" if md else f"    {line}")
    return "\n".join(out) + "\n"


def _source_totals(report: DiffReport) -> dict[str, int]:
    totals: dict[str, int] = {}
    for source, n in report.by_source.items():
        kind = source
        if source.startswith("table "):
            kind = "tables"
        elif source.startswith("generated"):
            kind = "generated worlds"
        totals[kind] = totals.get(kind, 0) + n
    return totals
