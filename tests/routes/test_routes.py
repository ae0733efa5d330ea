"""The route table: the shipped table is docs/domain.md section 5; load-time validation names
file and route; matching is FULL / PARTIAL (405 + Allow) / NONE, with literal-first
backtracking, and every concrete path matches exactly the template it came from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routes import Match, RouteTable, RouteTableError, build_table, load_routes

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "routes.toml"
DOMAIN = ROOT / "docs" / "domain.md"

#: One demo-world id per template parameter, to turn a template into a concrete path.
DEMO_IDS = {
    "msisdn": "436641000001",
    "customer": "1000001",
    "contract": "ct-1000001",
    "invoice": "RE-2026-110001",
    "addon": "eu-roaming-5gb",
    "barring": "premium-sms",
    "vpn": "vpn-alpenblick-1",
}
#: The path parameter that names each resource type.
RESOURCE_PARAM = {"line": "msisdn", "contract": "contract", "invoice": "invoice", "customer": "customer",
                  "vpn": "vpn"}


def segs(path: str) -> list[str]:
    return [] if path == "/" else path[1:].split("/")


def concrete(template: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: DEMO_IDS[m.group(1)], template)


def domain_rows() -> list[tuple[str, str, str | None, str | None]]:
    """(method, template, action or None for public, resource type) from docs/domain.md section 5."""
    text = DOMAIN.read_text()
    start = text.index("## 5.")
    end = text.find("\n## ", start)
    section = text[start : end if end >= 0 else len(text)]
    rows = []
    for line in section.splitlines():
        m = re.match(r"^\| (GET|PUT|POST|DELETE|PATCH) (/\S+) \| ([^|]+) \| ([^|]+) \|$", line)
        if not m:
            continue
        method, path, action, resource = (x.strip() for x in m.groups())
        if action.startswith("public"):
            rows.append((method, path, None, None))
            continue
        kind = resource.split()[0].lower()
        rows.append((method, path, action, "vpn" if kind == "vpn" else kind))
    return rows


def route(path: str, methods: tuple[str, ...] = ("GET",), **kw: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"methods": list(methods), "path": path, "upstream": kw.pop("upstream", "portal")}
    if kw.pop("public", False):
        raw["public"] = True
    else:
        names = re.findall(r"\{([a-z_]+)\}", path)
        raw.update(action=kw.pop("action", "view_usage"), resource=kw.pop("resource", "line"),
                   param=kw.pop("param", names[0] if names else None))
    raw.update(kw)
    return raw


def table(*routes: dict[str, Any]) -> RouteTable:
    return build_table(list(routes), "test.toml", ["portal", "other"])


def refused(*routes: dict[str, Any], upstreams: tuple[str, ...] = ("portal",)) -> str:
    with pytest.raises(RouteTableError) as info:
        build_table(list(routes), "test.toml", upstreams)
    return str(info.value)


# --- the shipped table ---------------------------------------------------------------


def test_shipped_table_loads_with_the_configured_upstreams() -> None:
    t = load_routes(SHIPPED, ["portal"])
    assert t.upstreams == {"portal"}


def test_shipped_table_is_domain_section_5_every_row() -> None:
    t = load_routes(SHIPPED, ["portal"])
    rows = domain_rows()
    assert len(rows) == 24
    for method, template, action, resource in rows:
        hits = [r for r in t.routes if r.path == template and method in r.methods]
        assert len(hits) == 1, (method, template)
        r = hits[0]
        if action is None:
            assert r.public and r.action is None and r.resource is None, template
        else:
            assert not r.public, template
            assert (r.action, r.resource) == (action, resource), template
            assert r.param == RESOURCE_PARAM[resource], template
        m = t.match(method, segs(concrete(template)))
        assert m.match is Match.FULL and m.route is r, template
        if resource is not None:
            assert m.resource_id == DEMO_IDS[RESOURCE_PARAM[resource]]
    # ... and nothing else: every shipped route is a row of the table.
    shipped = {(m, r.path) for r in t.routes for m in r.methods}
    assert shipped == {(m, p) for m, p, _, _ in rows}


def test_shipped_table_actions_are_the_policy_actions() -> None:
    t = load_routes(SHIPPED, ["portal"])
    polar = (ROOT / "policies" / "portal.polar").read_text()
    for action in t.actions:
        assert f'"{action}"' in polar, action


def test_shipped_table_refuses_an_unknown_upstream_set() -> None:
    with pytest.raises(RouteTableError, match=r"unknown upstream 'portal'"):
        load_routes(SHIPPED, ["backend"])


@pytest.mark.parametrize(
    "path",
    ["/api/lines/0664abc/usage", "/api/lines/12/usage", "/api/lines/4366410000011234567/usage",
     "/api/customers/x1000001/profile"],
)
def test_shipped_param_pattern_mismatch_is_none(path: str) -> None:
    t = load_routes(SHIPPED, ["portal"])
    assert t.match("GET", segs(path)).match is Match.NONE


def test_shipped_405_lists_allowed_methods() -> None:
    t = load_routes(SHIPPED, ["portal"])
    m = t.match("DELETE", segs("/api/lines/436641000001/tariff"))
    assert m.match is Match.PARTIAL
    assert m.allowed_methods == {"GET", "HEAD", "PUT"}
    m = t.match("GET", segs("/api/lines/436641000001/addons"))
    assert m.match is Match.PARTIAL and m.allowed_methods == {"POST"}


def test_unknown_paths_are_none() -> None:
    t = load_routes(SHIPPED, ["portal"])
    for path in ["/", "/api", "/api/lines", "/api/lines/436641000001", "/api/lines/436641000001/usage/x",
                 "/api/lines/436641000001/usage/", "/API/status", "/api/status/"]:
        assert t.match("GET", segs(path)).match is Match.NONE, path


# --- load-time validation ------------------------------------------------------------


def test_duplicate_route() -> None:
    msg = refused(route("/a/{x}"), route("/a/{x}"))
    assert "test.toml" in msg and "'/a/{x}'" in msg and "overlap" in msg and "GET" in msg


def test_overlapping_templates_same_method() -> None:
    msg = refused(route("/a/{x}"), route("/a/b", public=True))
    assert "test.toml" in msg and "'/a/{x}'" in msg and "'/a/b'" in msg and "GET" in msg


def test_overlap_through_params_on_both_sides() -> None:
    msg = refused(route("/a/{x}/c"), route("/a/b/{y}", param="y"))
    assert "'/a/{x}/c'" in msg and "'/a/b/{y}'" in msg


def test_overlap_only_on_the_shared_method() -> None:
    msg = refused(route("/a/{x}", ("GET", "PUT")), route("/a/b", ("PUT", "POST"), public=True))
    assert "for PUT" in msg


def test_same_template_different_methods_is_fine() -> None:
    t = table(route("/a/{x}", ("GET",)), route("/a/{x}", ("PUT",), action="change_tariff"))
    assert t.match("PUT", ["a", "1"]).route.action == "change_tariff"  # type: ignore[union-attr]


def test_unknown_upstream() -> None:
    msg = refused(route("/a/{x}", upstream="nowhere"))
    assert "test.toml" in msg and "route[0]" in msg and "/a/{x}" in msg and "'nowhere'" in msg
    assert "portal" in msg  # the known ones


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/a/{x", "bad template segment"),
        ("/a/x{y}", "bad template segment"),
        ("/a/{y}x", "bad template segment"),
        ("/a/{}", "bad template segment"),
        ("/a/{X}", "bad template segment"),
        ("//a", "empty segment"),
        ("/a//b", "empty segment"),
        ("/a/", "empty segment"),
        ("/a/..", "bad literal segment"),
        ("/a/.", "bad literal segment"),
        ("/a/b c", "bad literal segment"),
        ("/a/%2F", "bad literal segment"),
        ("/a/{x}/{x}", "duplicate parameter"),
        ("a/b", "starting with '/'"),
    ],
)
def test_bad_template(path: str, problem: str) -> None:
    msg = refused(route("/ok", public=True), {"methods": ["GET"], "path": path, "public": True, "upstream": "portal"})
    assert msg.startswith("test.toml: route[1]: "), msg
    assert problem in msg
    assert path in msg


def test_public_route_with_an_action() -> None:
    msg = refused(route("/a/{x}", public=True, action="view_usage"))
    assert "test.toml: route[0]: /a/{x}" in msg and "public route" in msg


@pytest.mark.parametrize("param", ["y", None, 3])
def test_param_not_in_template(param: Any) -> None:
    msg = refused(route("/a/{x}", param=param))
    assert "test.toml: route[0]: /a/{x}" in msg and "param" in msg


def test_bad_resource_and_action() -> None:
    assert "resource must be one of" in refused(route("/a/{x}", resource="account"))
    assert "action must be a snake_case name" in refused(route("/a/{x}", action="View-Usage"))


def test_bad_regex() -> None:
    msg = refused(route("/a/{x}", params={"x": "[0-9"}))
    assert "test.toml: route[0]: /a/{x}" in msg and "params.x" in msg and "bad regular expression" in msg


def test_regex_for_unknown_param() -> None:
    msg = refused(route("/a/{x}", params={"y": "[0-9]+"}))
    assert "params.y" in msg and "not a parameter" in msg


def test_bad_method_and_unknown_key() -> None:
    assert "unknown method 'FETCH'" in refused(route("/a", ("FETCH",), public=True))
    assert "methods must be a non-empty array" in refused(route("/a", (), public=True))
    assert "unknown key 'actoin'" in refused(route("/a/{x}", actoin="x"))


def test_empty_table() -> None:
    with pytest.raises(RouteTableError, match="at least one"):
        build_table([], "test.toml")


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(RouteTableError, match="route table not found"):
        load_routes(tmp_path / "none.toml")
    bad = tmp_path / "routes.toml"
    bad.write_text("[[route]\n")
    with pytest.raises(RouteTableError, match=re.escape(str(bad)) + ": not valid TOML"):
        load_routes(bad)
    bad.write_text('[routes]\npath = "/a"\n')
    with pytest.raises(RouteTableError, match="unknown top-level key 'routes'"):
        load_routes(bad)
    bad.write_text('[[route]]\nmethods = ["GET"]\npath = "/a/{x"\npublic = true\nupstream = "portal"\n')
    with pytest.raises(RouteTableError, match=re.escape(f"{bad}: route[0]: /a/{{x")):
        load_routes(bad, ["portal"])


# --- matching ----------------------------------------------------------------------


def test_head_implied_by_get() -> None:
    t = table(route("/a/{x}"), route("/p", ("POST",), public=True))
    m = t.match("HEAD", ["a", "1"])
    assert m.match is Match.FULL and m.route is not None and m.route.path == "/a/{x}"
    assert t.match("HEAD", ["p"]).match is Match.PARTIAL


def test_405_partial_with_allowed_methods() -> None:
    t = table(route("/a/{x}", ("GET", "PUT")), route("/a/{x}", ("DELETE",)))
    m = t.match("POST", ["a", "1"])
    assert m.match is Match.PARTIAL and m.route is None
    assert m.allowed_methods == {"GET", "HEAD", "PUT", "DELETE"}


def test_literal_wins_over_param() -> None:
    t = table(route("/a/{x}"), route("/a/me", ("POST",), public=True), route("/a/b/c", public=True))
    assert t.match("GET", ["a", "b"]).route.path == "/a/{x}"  # type: ignore[union-attr]
    assert t.match("GET", ["a", "b", "c"]).route.path == "/a/b/c"  # type: ignore[union-attr]


def test_param_route_for_a_method_the_literal_route_lacks() -> None:
    """`/a/me` POST and `/a/{x}` GET do not overlap: GET /a/me is the param route, not a 405."""
    t = table(route("/a/{x}"), route("/a/me", ("POST",), public=True))
    m = t.match("GET", ["a", "me"])
    assert m.match is Match.FULL and m.route is not None and m.route.path == "/a/{x}"
    assert m.params == {"x": "me"}
    assert t.match("POST", ["a", "me"]).route.path == "/a/me"  # type: ignore[union-attr]
    m = t.match("DELETE", ["a", "me"])
    assert m.match is Match.PARTIAL and m.allowed_methods == {"POST", "GET", "HEAD"}


def test_literal_vs_param_backtracking() -> None:
    t = table(route("/a/b/d", public=True), route("/a/{x}/c"))
    m = t.match("GET", ["a", "b", "c"])
    assert m.match is Match.FULL and m.route is not None and m.route.path == "/a/{x}/c"
    assert m.params == {"x": "b"} and m.resource_id == "b"
    assert t.match("GET", ["a", "b", "d"]).route.path == "/a/b/d"  # type: ignore[union-attr]
    assert t.match("GET", ["a", "z", "d"]).match is Match.NONE


def test_deep_backtracking_restores_params() -> None:
    t = table(route("/{p}/b/{q}/d", public=True), route("/{p}/{r}/c/e", public=True),
              route("/x/b/c/f", public=True))
    m = t.match("GET", ["x", "b", "c", "e"])
    assert m.route is not None and m.route.path == "/{p}/{r}/c/e"
    assert m.params == {"p": "x", "r": "b"}
    m = t.match("GET", ["x", "b", "c", "d"])
    assert m.route is not None and m.route.path == "/{p}/b/{q}/d" and m.params == {"p": "x", "q": "c"}


def test_param_names_per_route_at_a_shared_node() -> None:
    t = table(route("/a/{x}/c"), route("/a/{y}/d", param="y"))
    assert t.match("GET", ["a", "1", "d"]).params == {"y": "1"}
    assert t.match("GET", ["a", "1", "c"]).params == {"x": "1"}


def test_param_does_not_match_an_empty_segment() -> None:
    t = table(route("/a/{x}"), route("/a/{x}/b"))
    assert t.match("GET", ["a", ""]).match is Match.NONE
    assert t.match("GET", ["a", "", "b"]).match is Match.NONE


def test_param_pattern_mismatch_is_none() -> None:
    t = table(route("/lines/{msisdn}/usage", params={"msisdn": "[0-9]{6,15}"}))
    assert t.match("GET", ["lines", "436641000001", "usage"]).match is Match.FULL
    for bad in ["43664100000a", "12345", "4366410000012345", "436641000001\n"]:
        assert t.match("GET", ["lines", bad, "usage"]).match is Match.NONE, bad


def test_root_route() -> None:
    t = table(route("/", public=True))
    assert t.match("GET", []).match is Match.FULL
    assert t.match("GET", [""]).match is Match.NONE


def test_names() -> None:
    t = table(route("/a/{x}", ("PUT", "GET")), route("/b", public=True, name="status"))
    assert [r.name for r in t.routes] == ["GET+PUT /a/{x}", "status"]


# --- property: every concrete path matches exactly its template ----------------------

LITERALS = ["a", "b", "c", "api", "lines"]
segment_st = st.one_of(st.sampled_from(LITERALS), st.just("{}"))
template_st = st.lists(segment_st, min_size=1, max_size=4)


def _overlap(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and all(x == y or "{}" in (x, y) for x, y in zip(a, b, strict=True))


def _render(template: list[str]) -> str:
    out, n = [], 0
    for seg in template:
        if seg == "{}":
            out.append(f"{{p{n}}}")
            n += 1
        else:
            out.append(seg)
    return "/" + "/".join(out)


@settings(max_examples=400, deadline=None)
@given(
    templates=st.lists(st.tuples(st.sampled_from(["GET", "POST"]), template_st), min_size=1, max_size=12),
    data=st.data(),
)
def test_every_concrete_path_matches_exactly_its_template(
    templates: list[tuple[str, list[str]]], data: st.DataObject
) -> None:
    """Templates that do not overlap for a method; a path made from one (parameters drawn
    partly from the literals, to force backtracking) matches that one and no other."""
    chosen: list[tuple[str, list[str]]] = []
    for method, t in templates:
        if not any(m == method and _overlap(t, c) for m, c in chosen):
            chosen.append((method, t))
    raw = [{"methods": [m], "path": _render(t), "public": True, "upstream": "portal"} for m, t in chosen]
    compiled = build_table(raw, "generated", ["portal"])
    values = st.one_of(st.sampled_from(LITERALS), st.text("xyz019-", min_size=1, max_size=3))
    for method, template in chosen:
        concrete_segments = [data.draw(values) if s == "{}" else s for s in template]
        m = compiled.match(method, concrete_segments)
        assert m.match is Match.FULL, (method, template, concrete_segments, [r.name for r in compiled.routes])
        assert m.route is not None and m.route.path == _render(template) and method in m.route.methods
        expected = [v for s, v in zip(template, concrete_segments, strict=True) if s == "{}"]
        assert list(m.params.values()) == expected


@settings(max_examples=200, deadline=None)
@given(templates=st.lists(template_st, min_size=2, max_size=8))
def test_overlapping_templates_are_always_refused(templates: list[list[str]]) -> None:
    overlapping = any(_overlap(a, b) for i, a in enumerate(templates) for b in templates[i + 1 :])
    raw = [{"methods": ["GET"], "path": _render(t), "public": True, "upstream": "portal"} for t in templates]
    if overlapping:
        with pytest.raises(RouteTableError, match="overlap"):
            build_table(raw, "generated", ["portal"])
    else:
        build_table(raw, "generated", ["portal"])
