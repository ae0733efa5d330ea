# ruff: noqa: E501  (table-driven cases read best one per line)
"""The YAML decision tables in policies/tests/ pass, and the runner catches a wrong expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.engine import PolicyEngine
from gateway.policy.testing import TableError, run_policy_tests

from .conftest import TESTS

ACTIONS_BY_RESOURCE = {
    "line": {"view_usage", "view_tariff", "view_itemized_bill", "change_tariff", "book_addon", "cancel_addon",
             "set_barring", "block_sim", "lift_barring", "unblock_sim", "order_sim_swap", "view_puk"},
    "contract": {"view_invoices", "extend_contract", "cancel_contract"},
    "invoice": {"view_invoices", "download_invoice"},
    "customer": {"view_profile", "change_profile", "change_payment_method", "change_customer_password"},
    "account": {"manage_own_login"},
    "vpn": {"view_vpn", "change_vpn"},
}


def test_all_tables_pass(engine: PolicyEngine) -> None:
    report = run_policy_tests(engine, TESTS)
    assert report.errors == []
    assert report.failure_lines() == []
    assert report.passed > 500


@pytest.mark.parametrize(
    "table,actors",
    [
        ("holder.yaml", ["anna", "anna_no_2fa", "markus", "eva"]),
        ("business_member.yaml", ["sophie"]),
        ("invoice_split.yaml", ["thomas", "thomas_business"]),
        ("company_phone.yaml", ["lukas"]),
    ],
)
def test_every_section3_cell_is_covered(engine: PolicyEngine, table: str, actors: list[str]) -> None:
    """Each DOMAIN column's actors have every action of every resource kind in some case."""
    report = run_policy_tests(engine, TESTS / table)
    seen: dict[str, set[str]] = {}
    for r in report.results:
        _file, actor, resource, action = r.nodeid.split("::")
        seen.setdefault(actor, set()).add(action)
    every = set().union(*ACTIONS_BY_RESOURCE.values())
    for actor in actors:
        assert seen[actor] >= every, (actor, every - seen[actor])


def test_wrong_expectation_fails(engine: PolicyEngine, tmp_path: Path) -> None:
    bad = (TESTS / "holder.yaml").read_text().replace("lift_barring: step_up", "lift_barring: allow")
    (tmp_path / "t.yaml").write_text(bad)
    report = run_policy_tests(engine, tmp_path)
    assert not report.ok
    assert report.failed >= 1
    assert "expected allow, got step_up" in report.failure_lines()[0]


@pytest.mark.parametrize(
    "content,needle",
    [
        ("actors: [1, 2", "not valid YAML"),
        ("cases: [{actor: nobody, resource: 'line:1', expect: {view_usage: allow}}]", "unknown actor 'nobody'"),
        ("actors: {a: {role: customer}}\ncases: [{actor: a, resource: 'line:1', expect: {view_usag: allow}}]", "view_usag: unknown action"),
        ("actors: {a: {role: custmer}}", "role must be one of"),
        ("actors: {a: {role: customer}}\ncases: [{actor: a, resource: 'lin:1', expect: {view_usage: allow}}]", "unknown resource type 'lin'"),
        ("actors: {a: {role: customer}}\ncases: [{actor: a, resource: 'line:1', expect: {view_usage: allowed}}]", "unknown outcome 'allowed'"),
        ("actorz: {}", "unknown top-level key 'actorz'"),
    ],
)
def test_malformed_tables_are_precise_errors(engine: PolicyEngine, tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    report = run_policy_tests(engine, f)
    assert not report.ok
    assert report.errors and needle in report.errors[0], report.errors
    assert str(f) in report.errors[0]


def test_inline_world(engine: PolicyEngine, tmp_path: Path) -> None:
    f = tmp_path / "inline.yaml"
    f.write_text(
        """
world:
  customers: [{number: "2000001", name: New, kind: private}]
  contracts: [{id: ct-new, customer: "2000001", kind: private}]
  lines: [{msisdn: "436649990001", contract: ct-new, customer: "2000001"}]
actors:
  new: {role: customer, bound_customer: "2000001"}
cases:
  - actor: new
    resource: line:436649990001
    expect: {view_usage: allow, view_puk: step_up}
  - actor: new
    resource: line:436641000001
    expect: {view_usage: not_found}
"""
    )
    report = run_policy_tests(engine, f)
    assert report.ok, report.failure_lines()
    with pytest.raises(TableError):
        raise TableError("x")


@pytest.mark.parametrize(
    "world,needle",
    [
        ("lines: [{msisdn: '436649990001', contract: ct-nope, customer: '1000001'}]", "world.lines[0].contract: unknown contract 'ct-nope'"),
        ("customers: [{number: '1000001', kind: private}]", "world.customers[0].number: duplicate customer '1000001'"),
        ("customers: [{number: '2000001', kind: privat}]", "world.customers[0].kind: must be one of"),
        ("lines: {msisdn: '436649990001'}", "world.lines: expected a list"),
    ],
)
def test_inline_world_problems_name_their_path(engine: PolicyEngine, tmp_path: Path, world: str, needle: str) -> None:
    f = tmp_path / "bad_world.yaml"
    f.write_text(f"world:\n  {world}\nactors: {{a: {{role: customer}}}}\n")
    report = run_policy_tests(engine, f)
    assert not report.ok
    assert report.errors and needle in report.errors[0], report.errors
    assert str(f) in report.errors[0]
