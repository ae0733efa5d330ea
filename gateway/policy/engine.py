"""The Polar engine behind a small interface: the only module that imports oso.

oso 0.27.3 is unmaintained upstream (no wheels past CPython 3.12), so nothing
else in the gateway may depend on it. What this module adds to oso:

- **strict load**: load warnings that oso prints to stdout (unknown specializer,
  no allow rule, ...) are collected and treated as errors; parse errors become
  ``file:line:col: message``; `check.check_policy` runs the model check (typo'd
  attributes, unknown classes, the permission catalogue, route actions).
- **wrapped calls**: every query runs inside ``try``; an exception (attribute
  typo reached at runtime, a raising method, stack overflow) is a deny with
  reason ``policy_error``, logged and counted, never an exception to the caller.
- **a decision cache** per engine (so per policy revision), keyed on exactly
  (actor facts, action, resource facts): the model values are frozen and
  hashable, and time enters only as the precomputed ``step_up_fresh`` boolean.
- **explain**: the traced proof of the allow rule that matched, or the
  ``deny_reason`` rules, each mapped back to its source line.

An engine is immutable once built; reloading builds a new one and swaps the
reference (see `authorizer.Authorizer.reload`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polar.ffi as _polar_ffi
import polar.query as _polar_query
from oso import Oso
from polar import Variable
from polar.exceptions import OsoError as PolarError
from polar.predicate import Predicate

from gateway.policy.cache import CacheStats, DecisionCache
from gateway.policy.check import PolicyFacts, RuleHead, check_policy
from gateway.policy.model import RESOURCE_CLASSES, Caller, Contract, Resource, ServiceClient, polar_classes
from gateway.policy.reasons import HINT_REASONS, best_reason
from gateway.policy.registration import PROOF_TYPES, RegistrationTarget, RegistrationVerdict, binding_for

__all__ = [
    "Explanation",
    "Outcome",
    "PolicyEngine",
    "PolicyLoadError",
    "Verdict",
    "build_engine",
    "load_engine",
]

from gateway.policy.decision import Outcome

log = logging.getLogger("gateway.policy")

# oso ships type hints that mypy --strict rejects (untyped defs); go through Any.
_FFI: Any = _polar_ffi
_QUERY: Any = _polar_query.Query

_POSITION = re.compile(r"at line (\d+), column (\d+)(?: of file (\S+?))?(?:[:\s]|$)")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the policy decided (the cacheable part of a `Decision`)."""

    outcome: Outcome
    reason: str
    hint_url: str | None = None
    visible_parts: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    verdict: Verdict
    revision: str
    #: "file:line: rule text" of the rules that decided (allow / step_up / deny_reason / has_relation)
    rules: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


class PolicyLoadError(Exception):
    """The policy did not load strictly; `problems` are ``file:line:col: message`` strings."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _polar_problem(exc: BaseException, filename: str) -> str:
    text = str(exc).split("\n\tGet help")[0].strip()
    m = _POSITION.search(text)
    if m:
        line, col = m.group(1), m.group(2)
        msg = _POSITION.sub("", text).strip().rstrip(":").strip()
        return f"{filename}:{line}:{col}: {msg}"
    return f"{filename}:1:1: {text}"


def _warning_problem(message: str, filename: str) -> str:
    text = message.removeprefix("[warning]").strip()
    m = _POSITION.search(text)
    first = text.splitlines()[0] if text else "warning"
    if m:
        return f"{filename}:{m.group(1)}:{m.group(2)}: warning treated as error: {first}"
    return f"{filename}:1:1: warning treated as error: {first}"


def _strict_load(oso: Any, source: str, filename: str) -> list[str]:
    """Load `source` into `oso`; return every warning (oso would print them)."""
    ffi_polar = oso.ffi_polar
    payload = _FFI.ffi_serialize([_FFI.PolarSource(source, filename).__dict__])
    result = _FFI.lib.polar_load(ffi_polar.ptr, payload)
    messages = list(_FFI.process_messages(ffi_polar.next_message))
    ffi_polar.check_result(result)
    oso.check_inline_queries()
    return messages


@dataclass
class PolicyEngine:
    """One loaded, checked policy revision. Build with `build_engine` / `load_engine`."""

    oso: Any  # oso.Oso
    source: str
    filename: str
    revision: str
    facts: PolicyFacts
    business_station_url: str | None = None
    cache_size: int = 100_000
    on_error: Callable[[str, BaseException], None] | None = None
    cache_stats: CacheStats = field(default_factory=CacheStats, repr=False)
    _cache: DecisionCache[Verdict] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cache = DecisionCache(self.cache_size, self.cache_stats)

    # ------------------------------------------------------------------ decisions
    @property
    def permissions(self) -> Mapping[str, str]:
        """Declared actions → kind (read, change, protective, critical, business_station)."""
        return self.facts.permissions

    def decide(self, actor: Caller, action: str, resource: Resource) -> Verdict:
        """The verdict for (actor, action, resource); cached; never raises."""
        key = (actor, action, resource)
        try:
            cached = self._cache.get(key)
        except Exception as exc:  # facts that cannot be hashed: decide without the cache
            self._error(action, exc)
            return self.decide_uncached(actor, action, resource)
        if cached is not None:
            return cached
        verdict = self.decide_uncached(actor, action, resource)
        if verdict.reason != "policy_error":
            self._cache.put(key, verdict)
        return verdict

    def decide_uncached(self, actor: Caller, action: str, resource: Resource) -> Verdict:
        try:
            return self._decide(actor, action, resource)
        except Exception as exc:  # any engine failure is a deny (fail closed), logged and counted
            self._error(action, exc)
            return Verdict("deny", "policy_error")

    def _error(self, action: str, exc: BaseException) -> None:
        log.error(
            "policy evaluation failed",
            extra={"policy_revision": self.revision, "action": action, "error": type(exc).__name__},
        )
        log.debug("policy evaluation failure detail: %s", exc)
        if self.on_error is not None:
            self.on_error(action, exc)

    def _once(self, name: str, *args: object) -> bool:
        for _ in self.oso.query_rule(name, *args):
            return True
        return False

    def _decide(self, actor: Caller, action: str, resource: Resource) -> Verdict:
        oso: Any = self.oso
        if action not in self.facts.permissions:
            return Verdict("deny", "unknown_action")
        if self._once("allow", actor, action, resource):
            parts = None
            if isinstance(resource, Contract) and resource.is_split:
                parts = frozenset(
                    str(r["bindings"]["part"])
                    for r in oso.query_rule("visible_part", actor, resource, Variable("part"))
                )
            return Verdict("allow", "allowed", visible_parts=parts)
        if not self._once("has_relation", actor, resource):
            if isinstance(actor, ServiceClient):
                # Still 404 (invariant 2: the answer is the same whether the thing
                # exists or not), but the decision says why: the policy's
                # deny_reason for service clients (service_client_not_permitted).
                return Verdict("not_found", self._deny_reason(actor, action, resource))
            return Verdict("not_found", "not_found")
        # Only critical actions have step_up rules, each with its action literal in
        # the head (check.py refuses anything else), so other actions skip the query.
        if self.facts.permissions[action] == "critical" and self._once("step_up", actor, action, resource):
            return Verdict("step_up", "step_up_required")
        reason = self._deny_reason(actor, action, resource)
        hint = self.business_station_url if reason in HINT_REASONS else None
        return Verdict("deny", reason, hint_url=hint)

    def _deny_reason(self, actor: Caller, action: str, resource: Resource) -> str:
        reasons = [
            str(r["bindings"]["reason"])
            for r in self.oso.query_rule("deny_reason", actor, action, resource, Variable("reason"))
        ]
        return best_reason(reasons)

    def cache_len(self) -> int:
        return len(self._cache)

    # --------------------------------------------------------------- registration
    def can_register(self, target: RegistrationTarget, proof_type: str) -> RegistrationVerdict:
        """What account `proof_type` on `target` may create; never raises."""
        try:
            return self._can_register(target, proof_type)
        except Exception as exc:
            self._error("register", exc)
            return RegistrationVerdict(False, None, None, None, None, "policy_error")

    def _can_register(self, target: RegistrationTarget, proof_type: str) -> RegistrationVerdict:
        if proof_type not in PROOF_TYPES:
            return RegistrationVerdict(False, None, None, None, None, "proof_not_accepted")
        for r in self.oso.query_rule("can_register", target, proof_type, Variable("role"), Variable("level")):
            role = r["bindings"]["role"]
            level = r["bindings"]["level"]
            if role not in ("customer", "business_member", "split_private", "line_user"):
                raise ValueError(f"can_register produced an unknown role {role!r}")
            if level not in ("full", "restricted"):
                raise ValueError(f"can_register produced an unknown access level {level!r}")
            bound_customer, bound_msisdn = binding_for(target, role)
            return RegistrationVerdict(
                True, role, level, bound_customer, bound_msisdn, "registration_allowed"
            )
        reasons = [
            str(r["bindings"]["reason"])
            for r in self.oso.query_rule("registration_refusal", target, proof_type, Variable("reason"))
        ]
        reason = best_reason(reasons, default="proof_not_accepted")
        hint = self.business_station_url if reason in HINT_REASONS else None
        return RegistrationVerdict(False, None, None, None, None, reason, hint)

    # -------------------------------------------------------------------- explain
    def explain(self, actor: Caller, action: str, resource: Resource) -> Explanation:
        """The verdict plus the source rules behind it (for `policy explain`)."""
        verdict = self.decide_uncached(actor, action, resource)
        rules: list[str] = []
        notes: list[str] = []
        try:
            if verdict.outcome == "allow":
                rules += self._traced_rules("allow", actor, action, resource)
            elif verdict.outcome == "not_found":
                notes.append("no has_relation rule matched: the actor has no relation to this resource")
                if isinstance(actor, ServiceClient):
                    rules += self._traced_rules("deny_reason", actor, action, resource, Variable("reason"))
                    notes.append("a service client: not_found carries the deny_reason (" + verdict.reason + ")")
            elif verdict.outcome == "step_up":
                rules += self._traced_rules("step_up", actor, action, resource)
                notes.append("allowed once a second factor is given (user.step_up_fresh is false)")
            elif verdict.outcome == "deny":
                reasons = sorted(
                    {
                        str(r["bindings"]["reason"])
                        for r in self.oso.query_rule(
                            "deny_reason", actor, action, resource, Variable("reason")
                        )
                    }
                )
                if reasons:
                    rules += self._traced_rules("deny_reason", actor, action, resource, Variable("reason"))
                    notes.append("matching deny reasons: " + ", ".join(reasons))
                else:
                    notes.append("no allow rule and no deny_reason rule matched (default: not_permitted)")
        except Exception as exc:
            notes.append(f"trace failed: {type(exc).__name__}: {exc}")
        return Explanation(verdict, self.revision, tuple(dict.fromkeys(rules)), tuple(notes))

    def _traced(self, name: str, *args: object) -> Iterator[dict[str, Any]]:
        host = self.oso.host.copy()
        term = host.to_polar(Predicate(name=name, args=list(args)))
        ptr = _FFI.lib.polar_new_query_from_term(self.oso.ffi_polar.ptr, _FFI.ffi_serialize(term), 1)
        self.oso.ffi_polar.process_messages()
        query = _FFI.Query(self.oso.ffi_polar.check_result(ptr))
        yield from _QUERY(query, host=host).run()

    def _traced_rules(self, name: str, *args: object) -> list[str]:
        out: list[str] = []
        for result in self._traced(name, *args):
            for node in _rule_nodes(result.get("trace")):
                head = self._match_head(node)
                if head is not None:
                    out.append(self._format_head(head))
        return out

    def _match_head(self, rule: Mapping[str, Any]) -> RuleHead | None:
        name = rule.get("name")
        params = rule.get("params") or []
        literals: list[str | None] = []
        classes: list[str | None] = []
        for p in params:
            value = (p.get("parameter") or {}).get("value") or {}
            literals.append(value.get("String"))
            spec = ((p.get("specializer") or {}).get("value") or {}).get("Pattern") or {}
            classes.append((spec.get("Instance") or {}).get("tag"))
        names = frozenset(_names_in(rule.get("body")))
        candidates = [
            h
            for h in self.facts.heads_named(str(name))
            if len(h.params) == len(params)
            and all(h.params[i][2] == literals[i] for i in range(len(params)))
            and all(
                h.params[i][1] == classes[i]
                or (i == 1 and classes[i] is None and h.params[i][1] == "String")  # see engine_source
                for i in range(len(params))
            )
        ]
        for h in candidates:
            if h.names == names:
                return h
        return candidates[0] if candidates else None

    def _format_head(self, head: RuleHead) -> str:
        line = self.source.count("\n", 0, head.pos) + 1
        text = " ".join(self.source[head.pos : head.end].split())
        return f"{self.filename}:{line}: {text};"


def _rule_nodes(trace: Any) -> Iterator[Mapping[str, Any]]:
    """Rule nodes of a proof trace, outermost first."""
    if not isinstance(trace, Mapping):
        return
    if "trace" in trace and "node" not in trace:
        yield from _rule_nodes(trace["trace"])
        return
    node = trace.get("node") or {}
    if "Rule" in node:
        yield node["Rule"]
    for child in trace.get("children") or []:
        yield from _rule_nodes(child)


def _names_in(term: Any) -> Iterator[str]:
    """Attribute, method and rule names a rule body uses (mirrors RuleHead.names)."""
    if isinstance(term, Mapping):
        expr = term.get("Expression")
        if isinstance(expr, Mapping) and expr.get("operator") == "Dot":
            args = expr.get("args") or []
            if len(args) >= 2:
                value = args[1].get("value") or {}
                if "String" in value:
                    yield str(value["String"])
                elif "Call" in value:
                    yield str(value["Call"]["name"])
        call = term.get("Call")
        if isinstance(call, Mapping) and "name" in call and "args" in call:
            yield str(call["name"])
        for v in term.values():
            yield from _names_in(v)
    elif isinstance(term, list):
        for v in term:
            yield from _names_in(v)


# ------------------------------------------------------------------------- building
#: Rules the engine queries whose second argument it always fills with a Python str
#: (the action, or the proof type), so a `String` specializer there can never fail, and
#: whose answers do not depend on rule order (existence, or every reason collected;
#: can_register takes its first answer, so its specificity order is left alone).
_STRING_ARGUMENT_RULES = frozenset({"allow", "step_up", "deny_reason", "registration_refusal"})
_STRING_SPECIALIZER = re.compile(r"\w+\s*\(\s*[^,(){}\[\]\"]*,\s*_?\w+(\s*:\s*String)\b")


def engine_source(source: str, facts: PolicyFacts) -> str:
    """The source as the engine loads it: `String` specializers it cannot fail are blanked.

    oso 0.27 answers `action: String` with a round trip to Python per candidate rule
    (an ExternalIsa event, measured ~12-16 µs each; a deny tried six). Where the
    engine itself always passes a str, the check is redundant, so it is overwritten
    with spaces: every line and column stays where the security team wrote it, and
    `policy check`, `explain` and error messages still read the original text.
    """
    text = list(source)
    for head in facts.heads:
        if head.name not in _STRING_ARGUMENT_RULES or head.cls(1) != "String":
            continue
        m = _STRING_SPECIALIZER.match(source, head.pos, head.end)
        if m is not None:
            start, end = m.span(1)
            text[start:end] = " " * (end - start)
    return "".join(text)


def revision_of(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def build_engine(
    source: str,
    filename: str = "portal.polar",
    *,
    route_actions: Iterable[tuple[str, str]] = (),
    business_station_url: str | None = None,
    cache_size: int = 100_000,
    on_error: Callable[[str, BaseException], None] | None = None,
    cache_stats: CacheStats | None = None,
) -> PolicyEngine:
    """Load `source` strictly; raise `PolicyLoadError` listing every problem."""
    classes = polar_classes()
    resource_classes = {rtype: _polar_name(cls, classes) for rtype, cls in RESOURCE_CLASSES.items()}
    facts = check_policy(
        source,
        filename,
        classes,
        route_actions=list(route_actions),
        resource_classes=resource_classes,
    )
    problems: list[str] = []
    oso: Any = Oso()
    for name, cls in classes.items():
        oso.register_class(cls, name=name)
    try:
        warnings = _strict_load(oso, engine_source(source, facts), filename)
    except PolarError as exc:
        problems.append(_polar_problem(exc, filename))
        warnings = []
    problems += [_warning_problem(w, filename) for w in warnings]
    problems += [str(p) for p in sorted(facts.problems, key=lambda p: (p.line, p.column))]
    if problems:
        raise PolicyLoadError(dict.fromkeys(problems))
    return PolicyEngine(
        oso=oso,
        source=source,
        filename=filename,
        revision=revision_of(source),
        facts=facts,
        business_station_url=business_station_url,
        cache_size=cache_size,
        on_error=on_error,
        cache_stats=cache_stats if cache_stats is not None else CacheStats(),
    )


def load_engine(path: str | Path, **kwargs: Any) -> PolicyEngine:
    """Read and strictly load a policy file (see `build_engine` for the options)."""
    p = Path(path)
    try:
        source = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyLoadError([f"{p}:1:1: policy file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError([f"{p}:1:1: cannot read policy: {exc}"]) from None
    return build_engine(source, str(p), **kwargs)


def read_route_actions(path: str | Path) -> list[tuple[str, str]]:
    """(action, resource) of every non-public route of the route table ([] if the file is absent).

    Read with the one route-file parser (`gateway.routes.load_routes`), so the policy is
    checked against exactly the table the gateway serves.
    """
    from gateway.routes import load_routes

    p = Path(path)
    if not p.is_file():
        return []
    table = load_routes(p)
    return [(r.action, r.resource) for r in table.routes if not r.public and r.action and r.resource]


def _polar_name(cls: type, classes: Mapping[str, type]) -> str:
    for name, c in classes.items():
        if c is cls:
            return name
    return cls.__name__


def dump_trace(trace: Any) -> str:  # pragma: no cover - debugging aid
    return json.dumps(trace, indent=1)[:4000]
