"""A check of a Polar policy against the model, before oso ever sees a query.

oso loads an attribute typo (``user.hodls_line(line)``) and only fails when a
query reaches it; a rule for a misspelt action simply never matches. This module
reads the policy text itself (a small tokenizer, no oso) and reports, with
file:line:col:

- specializers naming classes that are not registered (``u: Usr``);
- attributes and methods used on a variable that the registered class lacks
  (for a specialized variable: its class; otherwise: no registered class has it);
- calls to rules that are not defined;
- the permission catalogue: every action in an ``allow`` / ``step_up`` /
  ``deny_reason`` head is declared with ``permission(action, kind)``; every
  declared action is reachable (an allow rule, or a deny_reason for
  ``business_station`` actions); critical actions and only those have step_up
  rules; every route action is declared and has a rule for the route's resource;
- the rules the engine queries all exist (``allow`` first of all).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["KINDS", "REQUIRED_RULES", "PolicyFacts", "Problem", "RuleHead", "check_policy"]

#: Action kinds a permission may declare.
KINDS = frozenset({"read", "change", "protective", "critical", "business_station"})

#: Rules the engine queries; a policy without any of them cannot decide.
REQUIRED_RULES = (
    "allow",
    "has_relation",
    "step_up",
    "deny_reason",
    "permission",
    "visible_part",
    "can_register",
    "registration_refusal",
)

_BUILTIN_CLASSES = frozenset(
    {"String", "Integer", "Float", "Boolean", "List", "Dictionary", "Datetime", "Timedelta"}
)
_KEYWORDS = frozenset(
    {"if", "and", "or", "not", "in", "matches", "new", "cut", "true", "false", "nil", "debug"}
)
_BUILTIN_CALLS = frozenset({"print", "forall", "debug"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\?=|==|!=|<=|>=|:=|::|[(){}\[\],;:.=<>+\-*/|])
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class RuleHead:
    """One rule's head: name, literal action (second argument), classes of params."""

    name: str
    pos: int
    params: tuple[tuple[str | None, str | None, str | None], ...]  # (var, class, literal)
    end: int = 0
    #: attributes, methods and rules the body uses (to match a traced rule to its source)
    names: frozenset[str] = frozenset()

    def literal(self, index: int) -> str | None:
        return self.params[index][2] if index < len(self.params) else None

    def cls(self, index: int) -> str | None:
        return self.params[index][1] if index < len(self.params) else None


@dataclass
class PolicyFacts:
    """What the static reading found (used by `policy check` and `explain`)."""

    heads: list[RuleHead] = field(default_factory=list)
    permissions: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def heads_named(self, name: str) -> list[RuleHead]:
        return [h for h in self.heads if h.name == name]


def _tokens(source: str) -> tuple[list[_Tok], list[int]]:
    toks: list[_Tok] = []
    bad: list[int] = []
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup or "bad"
        if kind in ("ws", "comment"):
            continue
        if kind == "bad":
            bad.append(m.start())
            continue
        toks.append(_Tok(kind, m.group(), m.start()))
    return toks, bad


def _position(source: str, pos: int) -> tuple[int, int]:
    line = source.count("\n", 0, pos) + 1
    col = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return line, col


def _split_top(toks: list[_Tok], sep: str) -> list[list[_Tok]]:
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for t in toks:
        if t.kind == "op" and t.text in "([{":
            depth += 1
        elif t.kind == "op" and t.text in ")]}":
            depth -= 1
        if depth == 0 and t.kind == "op" and t.text == sep:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _members(cls: type) -> frozenset[str]:
    names = {n for n in dir(cls) if not n.startswith("_")}
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls)}
    return frozenset(names)


def check_policy(
    source: str,
    filename: str,
    classes: Mapping[str, type],
    *,
    route_actions: Iterable[tuple[str, str]] = (),
    resource_classes: Mapping[str, str] | None = None,
) -> PolicyFacts:
    """Read `source` and return its facts and every problem found (empty = fine).

    `classes` maps Polar names to Python classes; `route_actions` holds
    (action, resource_type) pairs from the route table; `resource_classes` maps a
    resource_type to its Polar class name.
    """
    facts = PolicyFacts()
    toks, bad = _tokens(source)

    def problem(pos: int, message: str) -> None:
        line, col = _position(source, pos)
        facts.problems.append(Problem(filename, line, col, message))

    for pos in bad:
        problem(pos, f"unexpected character {source[pos]!r}")
    members = {name: _members(cls) for name, cls in classes.items()}
    any_member = frozenset().union(*members.values()) if members else frozenset()

    statements = _split_top(toks, ";")
    bodies: list[tuple[RuleHead | None, list[_Tok], dict[str, str]]] = []
    for stmt in statements:
        if not stmt:
            continue
        if stmt[0].kind == "op" and stmt[0].text == "?=":
            bodies.append((None, stmt[1:], {}))
            continue
        if stmt[0].kind != "ident" or len(stmt) < 3 or stmt[1].text != "(":
            continue  # oso reports syntax errors itself, with position
        depth = 0
        close = -1
        for i, t in enumerate(stmt[1:], start=1):
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                depth -= 1
                if depth == 0:
                    close = i
                    break
        if close < 0:
            continue
        params: list[tuple[str | None, str | None, str | None]] = []
        bound: dict[str, str] = {}
        for ptoks in _split_top(stmt[2:close], ","):
            var: str | None = None
            cls: str | None = None
            lit: str | None = None
            if len(ptoks) == 1 and ptoks[0].kind == "string":
                lit = _unquote(ptoks[0].text)
            elif len(ptoks) == 1 and ptoks[0].kind == "ident":
                var = ptoks[0].text
            elif len(ptoks) >= 3 and ptoks[0].kind == "ident" and ptoks[1].text == ":":
                var = ptoks[0].text
                cls = ptoks[2].text
                if cls not in classes and cls not in _BUILTIN_CLASSES:
                    problem(ptoks[2].pos, f"unknown class {cls!r} (registered: {', '.join(sorted(classes))})")
                elif cls in classes:
                    bound[var] = cls
            params.append((var, cls, lit))
        rest = stmt[close + 1 :]
        if rest and rest[0].kind == "ident" and rest[0].text == "if":
            rest = rest[1:]
        names = frozenset(
            t.text
            for i, t in enumerate(rest)
            if t.kind == "ident"
            and t.text not in _KEYWORDS
            and ((i > 0 and rest[i - 1].text == ".") or (i + 1 < len(rest) and rest[i + 1].text == "("))
        )
        end = stmt[-1].pos + len(stmt[-1].text)
        head = RuleHead(stmt[0].text, stmt[0].pos, tuple(params), end, names)
        facts.heads.append(head)
        bodies.append((head, rest, bound))

    defined = {h.name for h in facts.heads}
    for _head, body, bound in bodies:
        for i, t in enumerate(body):
            if t.kind != "ident":
                continue
            prev = body[i - 1] if i > 0 else None
            nxt = body[i + 1] if i + 1 < len(body) else None
            after_dot = prev is not None and prev.kind == "op" and prev.text == "."
            if after_dot:
                continue
            if nxt is not None and nxt.text == "(" and t.text not in _KEYWORDS:
                if t.text not in defined and t.text not in _BUILTIN_CALLS and t.text not in classes:
                    problem(t.pos, f"call to undefined rule {t.text!r}")
                continue
            if nxt is not None and nxt.text == "." and i + 2 < len(body) and body[i + 2].kind == "ident":
                attr = body[i + 2]
                cls_name = bound.get(t.text)
                if cls_name is not None:
                    if attr.text not in members[cls_name]:
                        problem(
                            attr.pos,
                            f"{cls_name} has no attribute or method {attr.text!r} "
                            f"(used as {t.text}.{attr.text})",
                        )
                elif attr.text not in any_member and t.text not in classes:
                    problem(attr.pos, f"no registered class has an attribute or method {attr.text!r}")

    for name in REQUIRED_RULES:
        if name not in defined:
            problem(len(source), f"the policy defines no {name!r} rule (the engine queries it)")

    _check_permissions(facts, problem, route_actions, resource_classes or {})
    return facts


def _check_permissions(
    facts: PolicyFacts,
    report: Callable[[int, str], None],
    route_actions: Iterable[tuple[str, str]],
    resource_classes: Mapping[str, str],
) -> None:
    for head in facts.heads_named("permission"):
        action, kind = head.literal(0), head.literal(1)
        if action is None or kind is None or len(head.params) != 2:
            report(head.pos, 'permission/2 must be a fact of two strings: permission("action", "kind")')
            continue
        if kind not in KINDS:
            kinds = ", ".join(sorted(KINDS))
            report(head.pos, f"permission {action!r}: unknown kind {kind!r} (kinds: {kinds})")
        if action in facts.permissions:
            report(head.pos, f"permission {action!r} declared twice")
        facts.permissions[action] = kind
    declared = facts.permissions

    allowed: dict[str, set[str | None]] = {}
    for head in facts.heads_named("allow"):
        action = head.literal(1)
        if action is None:
            report(head.pos, "allow rule without a literal action in its head (write one rule per action)")
            continue
        if action not in declared:
            report(head.pos, f"allow rule for undeclared action {action!r} (declare it with permission/2)")
        allowed.setdefault(action, set()).add(head.cls(2))
    stepped: set[str] = set()
    for head in facts.heads_named("step_up"):
        action = head.literal(1)
        if action is None:
            # The engine asks step_up only for critical actions: a rule with a
            # variable action would silently never be consulted for the others.
            report(head.pos, "step_up rule without a literal action in its head (write one rule per action)")
            continue
        stepped.add(action)
        if action not in declared:
            report(head.pos, f"step_up rule for undeclared action {action!r}")
        elif declared[action] != "critical":
            report(head.pos, f"step_up rule for {action!r}, declared {declared[action]!r}, not critical")
    denied: dict[str, set[str | None]] = {}
    for head in facts.heads_named("deny_reason"):
        action = head.literal(1)
        if action is None:
            continue
        if action not in declared:
            report(head.pos, f"deny_reason rule for undeclared action {action!r}")
        denied.setdefault(action, set()).add(head.cls(2))

    for head in facts.heads_named("permission"):
        action, kind = head.literal(0), head.literal(1)
        if action is None or kind is None:
            continue
        if kind == "business_station":
            if action not in denied:
                report(head.pos, f"business_station action {action!r} has no deny_reason rule")
            if action in allowed:
                report(head.pos, f"business_station action {action!r} must not have allow rules")
        elif action not in allowed:
            report(head.pos, f"declared action {action!r} is unreachable: no allow rule")
        if kind == "critical" and action not in stepped:
            report(head.pos, f"critical action {action!r} has no step_up rule")

    end = facts.heads[-1].pos if facts.heads else 0
    for action, resource_type in route_actions:
        if action not in declared:
            report(end, f"config/routes.toml: action {action!r} is not a declared permission")
            continue
        want = resource_classes.get(resource_type)
        rules = denied if declared[action] == "business_station" else allowed
        classes_for = rules.get(action, set())
        if want is not None and want not in classes_for and None not in classes_for:
            report(
                end,
                f"config/routes.toml: action {action!r} on resource {resource_type!r} "
                f"({want}) has no rule for that class",
            )
