# ruff: noqa: E501  (table-driven cases read best one per line)
"""Hypothesis: random worlds and principals; the six invariants of docs/domain.md section 3 (the oracle of
gateway/policy/invariants.py, which `policy diff` gates on) hold
for every (principal, action, resource) against the real policy.

A world has customers of every kind, their contracts (private, business, company,
Business Member and invoice-split under a framework), lines (split contracts with a
private and a business part), invoices per part, VPNs; people hold several relations
at once. Principals take every role, bound to real, wrong or missing ids, full or
restricted, with a fresh, stale or no second factor; service clients too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.policy.engine import PolicyEngine, load_engine
from gateway.policy.invariants import Index, cell_violations, customer_of, reach
from gateway.policy.model import Actor, Line, ServiceClient
from gateway.policy.resolver import Resolver
from gateway.policy.testing import memory_directory, run_sync, table_world
from gateway.principal import Principal

from .conftest import MBS, POLICY

NOW = 1_800_000_000.0
ACTIONS = {
    "line": ["view_usage", "view_tariff", "view_itemized_bill", "change_tariff", "book_addon", "cancel_addon",
             "set_barring", "block_sim", "lift_barring", "unblock_sim", "order_sim_swap", "view_puk"],
    "contract": ["view_invoices", "extend_contract", "cancel_contract"],
    "invoice": ["view_invoices", "download_invoice"],
    "customer": ["view_profile", "change_profile", "change_payment_method", "change_customer_password"],
    "account": ["manage_own_login"],
    "vpn": ["view_vpn", "change_vpn"],
}
ENGINE: PolicyEngine = load_engine(POLICY, business_station_url=MBS)
KIND = ENGINE.permissions


@st.composite
def worlds(draw: Any) -> dict[str, Any]:
    n = 0

    def nid() -> str:
        nonlocal n
        n += 1
        return str(n)

    data: dict[str, list[dict[str, Any]]] = {k: [] for k in ("customers", "contracts", "lines", "invoices", "vpns")}
    people = [f"p{i}" for i in range(draw(st.integers(1, 5)))]

    def person() -> str | None:
        return draw(st.sampled_from([None, *people]))

    def lines_for(contract: str, customer: str, part: str | None, count: int) -> None:
        for _ in range(count):
            data["lines"].append({"msisdn": "4366" + nid().zfill(8), "contract": contract, "customer": customer,
                                  "part": part, "user": person()})

    def invoices_for(contract: str, customer: str, part: str | None) -> None:
        for current in (False, True):
            data["invoices"].append({"number": "RE-" + nid(), "contract": contract, "customer": customer,
                                     "part": part, "current": current})

    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["private", "business"]))
        c = "1" + nid().zfill(6)
        data["customers"].append({"number": c, "kind": kind, "holders": [p for p in [person()] if p],
                                  "authorised": [p for p in [person()] if p]})
        ct = "ct-" + nid()
        data["contracts"].append({"id": ct, "customer": c, "kind": kind})
        lines_for(ct, c, None, draw(st.integers(0, 3)))
        invoices_for(ct, c, None)
    for _ in range(draw(st.integers(0, 2))):
        fw = "1" + nid().zfill(6)
        data["customers"].append({"number": fw, "kind": "framework", "admins": [p for p in [person()] if p]})
        ct = "ct-" + nid()
        data["contracts"].append({"id": ct, "customer": fw, "kind": "company"})
        lines_for(ct, fw, None, draw(st.integers(0, 3)))
        invoices_for(ct, fw, None)
        data["vpns"].append({"id": "vpn-" + nid(), "customer": fw})
        for _ in range(draw(st.integers(0, 2))):
            bm = "1" + nid().zfill(6)
            data["customers"].append({"number": bm, "kind": "business_member", "members": [p for p in [person()] if p]})
            ct = "ct-" + nid()
            data["contracts"].append({"id": ct, "customer": bm, "kind": "business_member", "framework": fw})
            lines_for(ct, bm, None, draw(st.integers(1, 2)))
            invoices_for(ct, bm, None)
        for _ in range(draw(st.integers(0, 2))):
            sp = "1" + nid().zfill(6)
            data["customers"].append({"number": sp, "kind": "split_private", "split_private": [p for p in [person()] if p]})
            ct = "ct-" + nid()
            data["contracts"].append({"id": ct, "customer": sp, "kind": "invoice_split", "framework": fw})
            lines_for(ct, sp, "private", 1)
            lines_for(ct, fw, "business", draw(st.integers(1, 2)))
            invoices_for(ct, sp, "private")
            invoices_for(ct, fw, "business")
    return data


@st.composite
def principals(draw: Any, data: dict[str, Any]) -> Principal:
    """Half of them bound as registration would bind them, half with arbitrary (odd) bindings."""
    customers = [c["number"] for c in data["customers"]] + ["9999999"]
    msisdns = [ln["msisdn"] for ln in data["lines"]] + ["436600000000"]
    kinds = {c["number"]: c["kind"] for c in data["customers"]}
    sf = draw(st.sampled_from([None, NOW - 30, NOW - 601, NOW + 5]))
    access = draw(st.sampled_from(["full", "restricted"]))
    if draw(st.booleans()):
        line = draw(st.sampled_from(data["lines"])) if data["lines"] else None
        if line is None or draw(st.booleans()):
            c = draw(st.sampled_from(data["customers"]))
            role = {"private": "customer", "business": "customer", "business_member": "business_member",
                    "split_private": "split_private", "framework": "customer"}[c["kind"]]
            bound_customer, bound_msisdn = c["number"], None
        else:
            role = draw(st.sampled_from(["line_user", {"business_member": "business_member",
                                                        "split_private": "split_private"}.get(kinds[line["customer"]], "line_user")]))
            bound_customer, bound_msisdn = (None if role == "line_user" else line["customer"]), line["msisdn"]
        return Principal(subject="acc_a", access_level=access, second_factor_at=sf, role=role,  # type: ignore[arg-type]
                         bound_customer=bound_customer, bound_msisdn=bound_msisdn)
    return Principal(
        subject=draw(st.sampled_from(["acc_a", "acc_b", "client:x"])),
        kind=draw(st.sampled_from(["account", "account", "account", "service"])),
        access_level=access,
        second_factor_at=sf,
        role=draw(st.sampled_from(["customer", "business_member", "split_private", "line_user", None])),
        bound_customer=draw(st.sampled_from([None, *customers])),
        bound_msisdn=draw(st.sampled_from([None, *msisdns])),
    )


def check_invariants(data: st.DataObject) -> None:
    spec = data.draw(worlds())
    built = table_world(spec, "hypothesis world")
    world = Index.of(built)
    directory = memory_directory(built)
    resolver = Resolver(directory, lambda: NOW)
    refs: list[tuple[str, str | None]] = (
        [("line", m) for m in world.lines] + [("contract", c) for c in world.contracts]
        + [("invoice", i) for i in world.invoices] + [("customer", c) for c in world.customers]
        + [("vpn", v) for v in world.vpns] + [("vpn", "vpn-unknown"), ("line", "436699999999"),
                                              ("account", None), ("account", "acc_other")]
    )
    for _ in range(4):
        p = data.draw(principals(spec))
        t = reach(p, world)
        actor = run_sync(resolver.actor(p))
        service = p.kind == "service"
        if service:  # a client-credentials caller: no reach, whatever the principal carries
            assert isinstance(actor, ServiceClient) and actor.client_id == p.subject.removeprefix("client:")
        else:
            assert isinstance(actor, Actor)
            assert actor.customers == t.customers and actor.own_lines == t.own_lines
        fresh = p.step_up_fresh(NOW)
        for rtype, rid in refs:
            resource = run_sync(resolver.resource(p, rtype, rid))
            for action in ACTIONS[rtype]:
                if resource is None:
                    continue  # unknown id: not_found before the policy (checked in test_authorizer)
                v = ENGINE.decide(actor, action, resource)
                where = (p, action, rtype, rid, v)
                # the six invariants: the oracle `policy diff` gates on (gateway/policy/invariants.py)
                assert not cell_violations(p, t, world, rtype, resource, action, v, kinds=KIND, fresh=fresh,
                                           business_station_url=MBS), where
                if rtype == "vpn":
                    continue
                # service clients: denied by default, every answer says why
                if service:
                    assert (v.outcome, v.reason) == ("not_found", "service_client_not_permitted"), where
                # DOMAIN table: full reach + full session + fresh factor → everything allowed
                if customer_of(resource) in t.customers and p.access_level == "full" and fresh:
                    assert v.outcome == "allow", where
                # Benutzer-Login on its own line: only usage, tariff, barring, SIM block
                if isinstance(resource, Line) and resource.msisdn in t.own_lines:
                    allowed = {"view_usage", "view_tariff", "set_barring", "block_sim"}
                    assert (v.outcome == "allow") == (action in allowed), where


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
test_six_invariants = settings(max_examples=60, deadline=None, suppress_health_check=_HEALTH)(
    given(data=st.data())(check_invariants)
)
_find_violation = settings(
    max_examples=80, deadline=None, suppress_health_check=_HEALTH, phases=[Phase.generate], database=None
)(given(data=st.data())(check_invariants))

MUTANTS = {
    "line user sees itemized bill": (
        'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);',
        'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);\n'
        'allow(user: User, "view_itemized_bill", line: Line) if user.uses_line(line);',
    ),
    "restricted may change": (
        "manages_line(user: User, line: Line) if user.full and user.holds_line(line);",
        "manages_line(user: User, line: Line) if user.holds_line(line);",
    ),
    "critical without second factor": (
        'allow(user: User, "view_puk", line: Line) if\n    user.step_up_fresh and',
        'allow(user: User, "view_puk", line: Line) if\n',
    ),
    "VPN existence leaks": (
        "has_relation(_user: User, _vpn: VpnContract);",
        "has_relation(_user: User, _vpn: VpnContract) if 1 = 2;",
    ),
}


def test_the_properties_catch_policy_mutants(monkeypatch: Any) -> None:
    """The property test is only worth something if a broken policy fails it."""
    import sys

    import pytest

    source = POLICY.read_text()
    module = sys.modules[__name__]
    for name, (old, new) in MUTANTS.items():
        assert old in source, name
        from gateway.policy.engine import build_engine

        monkeypatch.setattr(module, "ENGINE", build_engine(source.replace(old, new), "m.polar", business_station_url=MBS))
        with pytest.raises(AssertionError):
            _find_violation()
        monkeypatch.undo()
