"""Service clients (client-credentials tokens, issue 5 point 3): a `ServiceClient` actor,
denied by default with its own reason, and the commented-out example grant in portal.polar
granting exactly what it says once a security team enables it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.policy.authorizer import Authorizer
from gateway.policy.engine import PolicyEngine, build_engine, read_route_actions
from gateway.policy.model import Actor, Line, ServiceClient, polar_classes
from gateway.policy.reasons import REASONS, message
from gateway.policy.resolver import Resolver
from gateway.policy.testing import demo_world, memory_directory, run_policy_tests
from gateway.principal import Principal
from gateway.settings import PolicySettings

from .conftest import MBS, POLICY, ROUTES, TESTS

NOW = 1_900_000_000.0
REASON = "service_client_not_permitted"
EXAMPLE = (
    '# allow(client: ServiceClient, "view_tariff", _line: Line) if\n'
    '#     client.has_scope("portal:read");\n'
)


def service(client_id: str = "portal-api", *scopes: str, **extra: object) -> Principal:
    """What gateway/auth/oidc/bearer.py makes of a client-credentials token."""
    values: dict[str, object] = {
        "subject": f"client:{client_id}",
        "kind": "service",
        "access_level": "restricted",
        "auth_methods": frozenset({"client_credentials"}),
        "provider": "customer",
        "scopes": frozenset(scopes),
        **extra,
    }
    return Principal(**values)  # type: ignore[arg-type]


#: Real demo resources of every kind.
IDS: dict[str, list[str | None]] = {
    "line": ["436641000001", "436641000031", "436641000040"],
    "contract": ["ct-1000001", "ct-1000030"],
    "invoice": ["RE-2026-110001", "RE-2026-110031"],
    "customer": ["1000001", "1000020"],
    "vpn": ["vpn-alpenblick-1"],
    "account": [None],
}
#: Every (action, resource_type, id) a route can ask.
ROUTE_CASES = [
    (action, rtype, rid)
    for action, rtype in sorted(set(read_route_actions(ROUTES)))
    for rid in IDS.get(rtype, [None])
]


def make(tmp_path: Path, source: str | None = None, *, run_tests: bool = True) -> Authorizer:
    (tmp_path / "portal.polar").write_text(source or POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copytree(TESTS, tmp_path / "tests")
    settings = PolicySettings(
        path="portal.polar", tests="tests", decision_log=str(tmp_path / "decisions.jsonl")
    )
    return Authorizer(
        directory=memory_directory(demo_world()),
        clock=lambda: NOW,
        settings=settings,
        base_dir=tmp_path,
        registry=CollectorRegistry(),
        routes_path=ROUTES,
        run_tests=run_tests,
    )


def enabled_example() -> str:
    source = POLICY.read_text(encoding="utf-8")
    assert EXAMPLE in source, "the documented example rule moved: update this test and docs/policies.md"
    rule = "".join(line.removeprefix("# ") + "\n" for line in EXAMPLE.splitlines())
    return source.replace(EXAMPLE, rule)


# ------------------------------------------------------------------- the model
def test_service_client_is_a_registered_frozen_fact() -> None:
    assert polar_classes()["ServiceClient"] is ServiceClient
    client = ServiceClient("portal-api", "customer", frozenset({"portal:read"}))
    assert client.has_scope("portal:read") and not client.has_scope("portal:write")
    assert not client.has_scope("portal")  # a set lookup, not a prefix or substring match
    with pytest.raises(dataclasses.FrozenInstanceError):
        client.scopes = frozenset({"admin"})  # type: ignore[misc]
    assert hash(client) == hash(ServiceClient("portal-api", "customer", frozenset({"portal:read"})))


async def test_resolver_builds_a_service_client_and_ignores_any_binding() -> None:
    resolver = Resolver(memory_directory(demo_world()), lambda: NOW)
    # Whatever else a service principal carries (a role, a binding, a full access level),
    # it reaches nothing: only client id, provider and scopes reach the policy.
    p = service("reports", "portal:read", role="customer", bound_customer="1000001", access_level="full")
    actor = await resolver.actor(p)
    assert actor == ServiceClient("reports", "customer", frozenset({"portal:read"}))
    account = await resolver.actor(dataclasses.replace(p, kind="account"))
    assert isinstance(account, Actor) and account.customers == frozenset({"1000001"})


# ------------------------------------------------------------- denied by default
@pytest.mark.parametrize(("action", "rtype", "rid"), ROUTE_CASES)
async def test_every_route_action_is_refused_with_the_service_reason(
    tmp_path: Path, action: str, rtype: str, rid: str | None
) -> None:
    authz = make(tmp_path, run_tests=False)
    for principal in (service("bare"), service("reader", "portal:read", "portal:write", "openid")):
        d = await authz.authorize(principal, action, rtype, rid, request_id="r")
        if rtype == "vpn":  # invariant 4: the pointer, for everyone
            assert (d.outcome, d.reason, d.hint_url) == ("deny", "vpn_in_business_station", MBS)
        else:  # invariant 2: a 404 like any caller without a relation, the reason says why
            assert (d.outcome, d.reason) == ("not_found", REASON), (action, rtype, rid)
            assert d.hint_url is None and d.visible_parts is None


async def test_own_login_is_not_a_relation_for_a_service_client(tmp_path: Path) -> None:
    """Before ServiceClient existed, a service principal was a `User` with no reach, and
    `owns_account` made manage_own_login on its own subject an *allow*."""
    authz = make(tmp_path, run_tests=False)
    p = service("portal-api")
    for rid in (None, p.subject):
        d = await authz.authorize(p, "manage_own_login", "account", rid, request_id="r")
        assert (d.outcome, d.reason) == ("not_found", REASON)


async def test_decision_log_and_metrics_carry_the_reason(tmp_path: Path) -> None:
    authz = make(tmp_path)
    d = await authz.authorize(service("portal-api", "portal:read"), "view_tariff", "line",
                              "436641000001", request_id="req-1")
    authz.close()
    entries = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    entry = next(e for e in entries if e["decision_id"] == d.decision_id)
    assert entry["subject"] == "client:portal-api" and entry["outcome"] == "not_found"
    assert entry["reason"] == REASON and entry["request_id"] == "req-1"


def test_the_reason_has_german_and_english_text() -> None:
    assert REASON in REASONS
    de, en = message(REASON, "de"), message(REASON, "en")
    assert de and en and de != en and "client" in en.lower()


# ------------------------------------------------------ the example grant, enabled
@pytest.fixture(scope="module")
def granted() -> PolicyEngine:
    return build_engine(
        enabled_example(), "portal.polar", route_actions=read_route_actions(ROUTES), business_station_url=MBS
    )


def test_the_shipped_policy_grants_nothing(engine: PolicyEngine) -> None:
    assert not [h for h in engine.facts.heads_named("allow") if h.cls(0) == "ServiceClient"]


async def test_enabled_example_grants_exactly_view_tariff_to_the_scope(
    tmp_path: Path, granted: PolicyEngine
) -> None:
    assert [h.literal(1) for h in granted.facts.heads_named("allow") if h.cls(0) == "ServiceClient"] == [
        "view_tariff"
    ]
    # Through the Authorizer, as the gateway asks (the tables are not run: see below).
    authz = make(tmp_path, enabled_example(), run_tests=False)
    reader = service("reader", "portal:read")
    others = [service("bare"), service("writer", "portal:write"), service("near", "portal:reader")]
    for action, rtype, rid in ROUTE_CASES:
        d = await authz.authorize(reader, action, rtype, rid, request_id="r")
        if (action, rtype) == ("view_tariff", "line"):
            assert d.outcome == "allow", rid  # any line, of any customer
        elif rtype == "vpn":
            assert d.reason == "vpn_in_business_station"
        else:
            assert (d.outcome, d.reason) == ("not_found", REASON), (action, rtype, rid)
        for other in others:
            o = await authz.authorize(other, action, rtype, rid, request_id="r")
            assert o.outcome != "allow", (other.subject, action, rid)
    # An unknown line stays a plain 404 even for the reader.
    missing = await authz.authorize(reader, "view_tariff", "line", "436641000099", request_id="r")
    assert (missing.outcome, missing.reason) == ("not_found", "not_found")
    # Accounts are untouched by the grant.
    lukas = Principal("acc_lukas", role="line_user", bound_msisdn="436641000040")
    d = await authz.authorize(lukas, "view_tariff", "line", "436641000001", request_id="r")
    assert d.outcome == "not_found"


def test_enabling_the_example_is_caught_by_the_shipped_tables(granted: PolicyEngine) -> None:
    """The tables pin "nothing by default": enabling the rule fails exactly the cases of
    scope holders on view_tariff of a line, so the change must come with its table."""
    report = run_policy_tests(granted, TESTS)
    failed = sorted(r.nodeid.split("::", 1)[1] for r in report.results if not r.passed)
    assert failed and all(
        n.split("::")[0] in ("reader", "many_scopes") and n.endswith("::view_tariff") and "::line:" in n
        for n in failed
    ), failed
    # And the engine's verdicts agree with the Authorizer's.
    line = Line("436641000020", "ct-1000021", "1000021")
    assert granted.decide(ServiceClient("x", "p", frozenset({"portal:read"})), "view_tariff", line).outcome == "allow"
    assert granted.decide(ServiceClient("x", "p"), "view_tariff", line).reason == REASON
