# ruff: noqa: E501  (table-driven cases read best one per line)
"""Engine behaviour: wrapped calls, cache, explain, registration, reasons."""

from __future__ import annotations

from gateway.policy.engine import PolicyEngine, build_engine
from gateway.policy.model import Account, Actor, Contract, Customer, Line, VpnContract
from gateway.policy.reasons import REASONS, message

from .conftest import POLICY

ANNA = Actor("acc_anna", role="customer", access_level="full", customers=frozenset({"1000001"}))
ANNA_2FA = Actor("acc_anna", role="customer", access_level="full", step_up_fresh=True, customers=frozenset({"1000001"}))
LINE = Line("436641000001", "ct-1000001", "1000001")


def test_basic_outcomes(engine: PolicyEngine) -> None:
    assert engine.decide(ANNA, "view_usage", LINE).outcome == "allow"
    assert engine.decide(ANNA, "view_puk", LINE).outcome == "step_up"
    assert engine.decide(ANNA_2FA, "view_puk", LINE).outcome == "allow"
    other = Line("436641000010", "ct-1000010", "1000010")
    assert engine.decide(ANNA, "view_usage", other).outcome == "not_found"
    vpn = engine.decide(ANNA, "change_vpn", VpnContract("vpn-x"))
    assert (vpn.outcome, vpn.reason, vpn.hint_url) == ("deny", "vpn_in_business_station", "https://business-station.example.at/")
    assert engine.decide(ANNA, "fly", LINE).reason == "unknown_action"
    assert engine.decide(ANNA, "manage_own_login", Account("acc_anna")).outcome == "allow"
    assert engine.decide(ANNA, "manage_own_login", Account("acc_other")).outcome == "not_found"


def test_split_contract_parts(engine: PolicyEngine) -> None:
    thomas = Actor("t", role="split_private", access_level="full", customers=frozenset({"1000030"}))
    ct = Contract("ct-1000030", "1000030", "invoice_split", "1000020")
    v = engine.decide(thomas, "view_invoices", ct)
    assert v.outcome == "allow" and v.visible_parts == frozenset({"private"})
    plain = engine.decide(ANNA, "view_invoices", Contract("ct-1000001", "1000001", "private"))
    assert plain.visible_parts is None


def test_cache_is_keyed_on_all_facts(engine: PolicyEngine) -> None:
    assert engine.decide(ANNA, "lift_barring", LINE).outcome == "step_up"
    assert engine.decide(ANNA_2FA, "lift_barring", LINE).outcome == "allow"
    assert engine.decide(ANNA, "lift_barring", LINE).outcome == "step_up"
    restricted = Actor("acc_anna", role="customer", access_level="restricted", step_up_fresh=True, customers=frozenset({"1000001"}))
    assert engine.decide(restricted, "lift_barring", LINE).reason == "restricted_session"


def test_raising_method_is_a_deny_and_counted() -> None:
    errors: list[str] = []
    engine = build_engine(POLICY.read_text(), str(POLICY), on_error=lambda action, exc: errors.append(action))

    class Boom(frozenset[str]):
        def __contains__(self, item: object) -> bool:
            raise RuntimeError("directory exploded")

    actor = Actor("x", role="customer", access_level="full", customers=Boom({"1000001"}))
    v = engine.decide(actor, "view_usage", LINE)
    assert (v.outcome, v.reason) == ("deny", "policy_error")
    assert errors == ["view_usage"]
    # not cached: a second call evaluates (and fails) again
    engine.decide(actor, "view_usage", LINE)
    assert errors == ["view_usage", "view_usage"]


def test_runtime_attribute_error_is_a_deny() -> None:
    """An attribute missing at query time (oso raises PolarRuntimeError) is a deny, not an exception."""
    errors: list[str] = []
    engine = build_engine(POLICY.read_text(), "p.polar", on_error=lambda a, e: errors.append(type(e).__name__))
    hollow = object.__new__(Actor)  # slots never set: every attribute read raises
    v = engine.decide(hollow, "change_tariff", LINE)
    assert v.reason == "policy_error" and errors


def test_explain_allow_names_the_rule(engine: PolicyEngine) -> None:
    ex = engine.explain(ANNA, "view_usage", LINE)
    assert ex.verdict.outcome == "allow"
    assert ex.rules and 'allow(user: User, "view_usage", line: Line) if user.holds_line(line);' in ex.rules[0]
    assert ex.revision == engine.revision


def test_explain_deny_names_deny_reason(engine: PolicyEngine) -> None:
    lu = Actor("l", role="line_user", own_lines=frozenset({"436641000040"}))
    ex = engine.explain(lu, "change_tariff", Line("436641000040", "ct-1000020", "1000020"))
    assert ex.verdict.reason == "restricted_session"
    assert any("restricted_session" in r for r in ex.rules)


def test_reason_codes_have_both_languages(engine: PolicyEngine) -> None:
    produced = {h.literal(3) for h in engine.facts.heads_named("deny_reason")} | {
        h.literal(2) for h in engine.facts.heads_named("registration_refusal")
    }
    produced |= {"not_found", "step_up_required", "not_permitted", "policy_error", "unknown_action", "directory_unavailable", "proof_not_accepted"}
    for code in produced:
        assert code in REASONS, code
        assert message(code, "de") != message(code, "en")
    assert message("no_such_code", "en") == "The request was refused."
    assert message("not_found", "en-GB") == "Not found."
    assert message("not_found", "fr") == "Nicht gefunden."


def test_customer_profile(engine: PolicyEngine) -> None:
    c = Customer("1000001", "private")
    assert engine.decide(ANNA, "change_payment_method", c).outcome == "step_up"
    assert engine.decide(ANNA_2FA, "change_payment_method", c).outcome == "allow"
