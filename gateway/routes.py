"""The route table: which portal action a (method, canonical path) is.

Loaded from ``config/routes.toml``, validated once, compiled into a segment
trie so that matching costs one dict lookup per path segment, not a regex scan
over every route. Overlapping routes are refused at load: every request maps
to exactly one route or none (Oathkeeper's rule), so "what was checked" can
never differ from "what was meant".

A match has three states, as in Starlette: FULL (route + parameters), PARTIAL
(the path exists, the method does not → 405 with ``Allow``), NONE (→ 404).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = [
    "RESOURCE_TYPES",
    "Match",
    "Route",
    "RouteMatch",
    "RouteTable",
    "RouteTableError",
    "load_routes",
]

RESOURCE_TYPES = frozenset({"line", "contract", "invoice", "customer", "vpn"})
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Used with fullmatch only: `$` would also match before a trailing "\n".
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()*+,=:@-]+")
_ACTION = re.compile(r"[a-z][a-z0-9_]*")
_ROUTE_KEYS = frozenset(
    {
        "methods",
        "path",
        "action",
        "resource",
        "param",
        "upstream",
        "public",
        "params",
        "name",
        "pass_authorization",
    }
)


class RouteTableError(Exception):
    """The route table is invalid; the message names the file and the route."""


_MEMO_SIZE = 4096
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class Match(Enum):
    NONE = 0
    PARTIAL = 1
    FULL = 2


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the route table."""

    name: str
    methods: frozenset[str]
    path: str
    upstream: str
    public: bool = False
    action: str | None = None
    resource: str | None = None
    #: The path parameter that identifies the resource (e.g. "msisdn").
    param: str | None = None
    #: Optional full-match regular expressions per parameter (e.g. msisdn digits).
    param_patterns: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    segments: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    #: Forward the client's own ``Authorization`` header to this route's backend
    #: (off by default: a bearer the gateway checked works on every route, so a
    #: backend must not hold it). A ``pgs_`` session token never leaves, even here.
    pass_authorization: bool = False

    def accepts(self, params: Mapping[str, str]) -> bool:
        return all(p.fullmatch(params[name]) is not None for name, p in self.param_patterns.items())


class RouteMatch(NamedTuple):
    """The routing stage's result, handed to resolve/authorize/forward (a NamedTuple:
    built on every request, and a frozen dataclass is several times slower to build)."""

    match: Match
    route: Route | None = None
    params: Mapping[str, str] = _NO_PARAMS
    allowed_methods: frozenset[str] = frozenset()

    @property
    def resource_id(self) -> str | None:
        if self.route is None or self.route.param is None:
            return None
        return self.params.get(self.route.param)


_NO_MATCH = RouteMatch(Match.NONE)


def _for_method(node: _Node, method: str) -> Route | None:
    route = node.routes.get(method)
    if route is None and method == "HEAD":
        route = node.routes.get("GET")
    return route


class _Node:
    __slots__ = ("literals", "param", "param_name", "routes")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.param_name: str | None = None
        #: Routes ending at this node, keyed by method.
        self.routes: dict[str, Route] = {}


class RouteTable:
    """A compiled, immutable route table."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        self._memo: dict[tuple[str, tuple[str, ...]], RouteMatch] = {}
        self._root = _Node()
        for route in self.routes:
            node = self._root
            for seg in route.segments:
                m = _PARAM.fullmatch(seg)
                if m:
                    if node.param is None:
                        node.param = _Node()
                        node.param_name = m.group(1)
                    node = node.param
                else:
                    node = node.literals.setdefault(seg, _Node())
            for method in route.methods:
                node.routes[method] = route

    @property
    def actions(self) -> frozenset[str]:
        return frozenset(r.action for r in self.routes if r.action)

    @property
    def upstreams(self) -> frozenset[str]:
        return frozenset(r.upstream for r in self.routes)

    def match(self, method: str, segments: Sequence[str]) -> RouteMatch:
        """Match decoded path segments (the canonical path split on "/").

        Literal segments win over parameters; where both exist at one level the
        matcher backtracks, so ``/a/{x}/c`` still matches when ``/a/b/d`` exists.
        Results are memoised per (method, segments): the table never changes.
        """
        key = (method, tuple(segments))
        found = self._memo.get(key)
        if found is None:
            found = self._match(method, segments)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()  # bounded: unique paths cannot grow it without end
            self._memo[key] = found
        return found

    def _match(self, method: str, segments: Sequence[str]) -> RouteMatch:
        values: list[str] = []
        node = self._find(self._root, segments, 0, values)
        if node is None:
            return _NO_MATCH
        route = _for_method(node, method)
        if route is None:
            # Slow path (405s, and a literal branch lacking the method while a parameter
            # branch has it: `/a/me` POST and `/a/{x}` GET do not overlap, so GET /a/me
            # is the parameter route). Overlaps are per method, so at most one serves it.
            allowed: set[str] = set()
            for other, other_values in self._candidates(self._root, segments, 0, ()):
                route = _for_method(other, method)
                if route is not None:
                    values = list(other_values)
                    break
                allowed.update(other.routes)
            else:
                if "GET" in allowed:
                    allowed.add("HEAD")
                return RouteMatch(Match.PARTIAL, allowed_methods=frozenset(allowed))
        params = dict(zip(route.param_names, values, strict=True))
        if route.param_patterns and not route.accepts(params):
            return _NO_MATCH
        return RouteMatch(Match.FULL, route, params)

    def _candidates(
        self, node: _Node, segments: Sequence[str], i: int, values: tuple[str, ...]
    ) -> Iterator[tuple[_Node, tuple[str, ...]]]:
        """Every node with routes that the segments reach, literal branches first."""
        if i == len(segments):
            if node.routes:
                yield node, values
            return
        seg = segments[i]
        lit = node.literals.get(seg)
        if lit is not None:
            yield from self._candidates(lit, segments, i + 1, values)
        if node.param is not None and seg:
            yield from self._candidates(node.param, segments, i + 1, (*values, seg))

    def _find(self, node: _Node, segments: Sequence[str], i: int, values: list[str]) -> _Node | None:
        while i < len(segments):
            seg = segments[i]
            lit = node.literals.get(seg)
            if lit is not None and node.param is not None and seg:
                # Both could match here: try the literal branch first, then the parameter.
                mark = len(values)
                found = self._find(lit, segments, i + 1, values)
                if found is not None:
                    return found
                del values[mark:]
                lit = None
            if lit is not None:
                node = lit
            elif node.param is not None and seg:
                values.append(seg)
                node = node.param
            else:
                return None
            i += 1
        return node if node.routes else None


def _fail(source: str, index: int, message: str) -> RouteTableError:
    return RouteTableError(f"{source}: route[{index}]: {message}")


def _parse_route(raw: Any, index: int, source: str, upstreams: frozenset[str] | None) -> Route:
    if not isinstance(raw, dict):
        raise _fail(source, index, "must be a table")
    unknown = sorted(set(raw) - _ROUTE_KEYS)
    if unknown:
        raise _fail(source, index, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_ROUTE_KEYS))})")
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _fail(source, index, f"path must be a string starting with '/', got {path!r}")
    where = f"{path}: "
    methods_raw = raw.get("methods")
    if (
        not isinstance(methods_raw, list)
        or not methods_raw
        or not all(isinstance(m, str) for m in methods_raw)
    ):
        raise _fail(source, index, where + "methods must be a non-empty array of strings")
    methods = frozenset(m.upper() for m in methods_raw)
    bad = sorted(methods - HTTP_METHODS)
    if bad:
        raise _fail(source, index, where + f"unknown method {bad[0]!r}")
    segments = tuple(path[1:].split("/")) if path != "/" else ()
    names: list[str] = []
    for seg in segments:
        if not seg:
            raise _fail(source, index, where + "empty segment ('//' or trailing '/') in template")
        m = _PARAM.fullmatch(seg)
        if m:
            if m.group(1) in names:
                raise _fail(source, index, where + f"duplicate parameter {{{m.group(1)}}}")
            names.append(m.group(1))
        elif "{" in seg or "}" in seg:
            raise _fail(source, index, where + f"bad template segment {seg!r} (use a whole segment: {{name}})")
        elif not _LITERAL.fullmatch(seg) or seg in (".", ".."):
            raise _fail(source, index, where + f"bad literal segment {seg!r}")
    upstream = raw.get("upstream")
    if not isinstance(upstream, str) or not upstream:
        raise _fail(source, index, where + "upstream must be a non-empty string")
    if upstreams is not None and upstream not in upstreams:
        known = ", ".join(sorted(upstreams)) or "none configured"
        raise _fail(source, index, where + f"unknown upstream {upstream!r} (known: {known})")
    public = raw.get("public", False)
    if not isinstance(public, bool):
        raise _fail(source, index, where + "public must be true or false")
    pass_authorization = raw.get("pass_authorization", False)
    if not isinstance(pass_authorization, bool):
        raise _fail(source, index, where + "pass_authorization must be true or false")
    action = raw.get("action")
    resource = raw.get("resource")
    param = raw.get("param")
    if public:
        if action is not None or resource is not None or param is not None:
            raise _fail(source, index, where + "a public route has no action, resource or param")
    else:
        if not isinstance(action, str) or not _ACTION.fullmatch(action):
            raise _fail(source, index, where + f"action must be a snake_case name, got {action!r}")
        if resource not in RESOURCE_TYPES:
            allowed = ", ".join(sorted(RESOURCE_TYPES))
            raise _fail(source, index, where + f"resource must be one of {allowed}, got {resource!r}")
        if not isinstance(param, str) or param not in names:
            raise _fail(
                source, index, where + f"param must name a path parameter of the template, got {param!r}"
            )
    patterns_raw = raw.get("params", {})
    if not isinstance(patterns_raw, dict):
        raise _fail(source, index, where + "params must be a table of regular expressions")
    patterns: dict[str, re.Pattern[str]] = {}
    for name, expr in patterns_raw.items():
        if name not in names:
            raise _fail(source, index, where + f"params.{name}: not a parameter of the template")
        if not isinstance(expr, str):
            raise _fail(source, index, where + f"params.{name}: must be a regular expression string")
        try:
            patterns[name] = re.compile(expr)
        except re.error as exc:
            raise _fail(source, index, where + f"params.{name}: bad regular expression: {exc}") from None
    name = raw.get("name") or f"{'+'.join(sorted(methods))} {path}"
    return Route(
        name=str(name),
        methods=methods,
        path=path,
        upstream=upstream,
        public=public,
        action=action,
        resource=resource,
        param=param,
        param_patterns=patterns,
        segments=segments,
        param_names=tuple(names),
        pass_authorization=pass_authorization,
    )


def _overlaps(a: Route, b: Route) -> bool:
    if len(a.segments) != len(b.segments) or not (a.methods & b.methods):
        return False
    for sa, sb in zip(a.segments, b.segments, strict=True):
        if sa != sb and not (_PARAM.fullmatch(sa) or _PARAM.fullmatch(sb)):
            return False
    return True


def build_table(raw_routes: Any, source: str, upstreams: Iterable[str] | None = None) -> RouteTable:
    """Validate parsed TOML (`[[route]]` tables) and compile it."""
    if not isinstance(raw_routes, list) or not raw_routes:
        raise RouteTableError(f"{source}: expected at least one [[route]] table")
    known = frozenset(upstreams) if upstreams is not None else None
    routes = [_parse_route(r, i, source, known) for i, r in enumerate(raw_routes)]
    for i, a in enumerate(routes):
        for b in routes[i + 1 :]:
            if _overlaps(a, b):
                both = sorted(a.methods & b.methods)
                raise RouteTableError(
                    f"{source}: routes {a.path!r} and {b.path!r} overlap for {', '.join(both)}: "
                    "a request must match exactly one route"
                )
    return RouteTable(routes)


def load_routes(path: str | Path, upstreams: Iterable[str] | None = None) -> RouteTable:
    """Load and compile ``routes.toml``; raise RouteTableError naming the file and route."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise RouteTableError(f"{source}: route table not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise RouteTableError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"route"})
    if extra:
        raise RouteTableError(f"{source}: unknown top-level key {extra[0]!r} (expected [[route]] tables)")
    return build_table(data.get("route"), source, upstreams)
