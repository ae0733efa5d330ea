# ruff: noqa: E501  (table-driven cases read best one per line)
"""Strict loading: every mistake a security engineer can make is an error with file:line:col."""

from __future__ import annotations

import re

import pytest

from gateway.policy.engine import PolicyLoadError, build_engine, load_engine

from .conftest import POLICY

POS = re.compile(r"^p\.polar:\d+:\d+: ")


def load_errors(source: str, **kwargs: object) -> list[str]:
    with pytest.raises(PolicyLoadError) as info:
        build_engine(source, "p.polar", **kwargs)  # type: ignore[arg-type]
    problems = info.value.problems
    assert problems
    for p in problems:
        assert POS.match(p), p
    return problems


def test_shipped_policy_loads_cleanly(policy_source: str) -> None:
    engine = build_engine(policy_source, "portal.polar")
    assert len(engine.revision) == 64
    assert engine.permissions["lift_barring"] == "critical"


def test_syntax_error_has_line_and_column(policy_source: str) -> None:
    lines = policy_source.splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("allow("))
    lines[n] = lines[n].replace(";", "")  # rule runs into the next one
    problems = load_errors("\n".join(lines))
    assert any(":" in p and "token" in p.lower() for p in problems), problems


def test_garbage_character_is_reported() -> None:
    problems = load_errors('allow(_u, "view_usage", _r) if 1 = 1 §;')
    assert any("p.polar:1:" in p for p in problems)


def test_typo_attribute_is_an_error_at_its_position(policy_source: str) -> None:
    bad = policy_source.replace("user.holds_line(line);", "user.hodls_line(line);", 1)
    problems = load_errors(bad)
    assert any("User has no attribute or method 'hodls_line'" in p for p in problems), problems
    line = next(i + 1 for i, text in enumerate(bad.splitlines()) if "hodls_line" in text)
    assert any(p.startswith(f"p.polar:{line}:") for p in problems)


def test_typo_attribute_on_unspecialized_variable(policy_source: str) -> None:
    bad = policy_source.replace(
        'deny_reason(user: User, action: String, _resource, "restricted_session") if\n    permission(action, "change") and user.restricted;',
        'deny_reason(user, action: String, _resource, "restricted_session") if\n    permission(action, "change") and user.restrictd;',
        1,
    )
    assert bad != policy_source
    problems = load_errors(bad)
    assert any("'restrictd'" in p for p in problems), problems


def test_unknown_class_is_an_error(policy_source: str) -> None:
    bad = policy_source.replace("line: Line)", "line: Lin)", 1)
    problems = load_errors(bad)
    assert any("Lin" in p for p in problems), problems


def test_missing_allow_is_an_error(policy_source: str) -> None:
    bad = re.sub(r"(?m)^allow\(", "permitted(", policy_source)
    problems = load_errors(bad)
    assert any("'allow'" in p or "allow rule" in p for p in problems), problems


def test_undeclared_action_in_allow_head(policy_source: str) -> None:
    bad = policy_source.replace('allow(user: User, "view_usage", line: Line) if user.uses_line', 'allow(user: User, "view_usgae", line: Line) if user.uses_line', 1)
    problems = load_errors(bad)
    assert any("undeclared action 'view_usgae'" in p for p in problems), problems


def test_unreachable_permission(policy_source: str) -> None:
    bad = policy_source + '\npermission("teleport_sim", "change");\n'
    problems = load_errors(bad)
    assert any("'teleport_sim' is unreachable" in p for p in problems), problems


def test_critical_without_step_up(policy_source: str) -> None:
    bad = policy_source.replace('permission("view_tariff", "read");', 'permission("view_tariff", "critical");')
    problems = load_errors(bad)
    assert any("critical action 'view_tariff' has no step_up rule" in p for p in problems), problems


def test_step_up_needs_a_literal_action(policy_source: str) -> None:
    # The engine asks step_up only for critical actions, so a catch-all step_up rule
    # would be silently ignored for the others: refused at load instead.
    bad = policy_source + '\nstep_up(user: User, _action: String, line: Line) if user.holds_line(line);\n'
    problems = load_errors(bad)
    assert any("step_up rule without a literal action" in p for p in problems), problems


def test_route_action_must_be_declared(policy_source: str) -> None:
    problems = load_errors(policy_source, route_actions=[("view_usage", "line"), ("fly_to_moon", "line")])
    assert any("fly_to_moon" in p and "routes.toml" in p for p in problems)


def test_route_action_needs_a_rule_for_its_resource(policy_source: str) -> None:
    problems = load_errors(policy_source, route_actions=[("view_usage", "customer")])
    assert any("no rule for that class" in p for p in problems)


def test_undefined_rule_call(policy_source: str) -> None:
    bad = policy_source.replace("if manages_line(user, line);", "if manges_line(user, line);", 1)
    problems = load_errors(bad)
    assert any("undefined rule 'manges_line'" in p for p in problems), problems


def test_oso_warnings_are_errors() -> None:
    # a resource block whose has_permission is never called: oso prints a warning and loads
    src = POLICY.read_text(encoding="utf-8") + '\nresource Line { permissions = ["x"]; }\n'
    problems = load_errors(src)
    assert any("warning treated as error" in p for p in problems), problems


def test_missing_file() -> None:
    with pytest.raises(PolicyLoadError) as info:
        load_engine("/nonexistent/portal.polar")
    assert "policy file not found" in str(info.value)


def test_failed_load_leaves_no_output_on_stdout(policy_source: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PolicyLoadError):
        build_engine(policy_source.replace("line: Line)", "line: Lin)", 1), "p.polar")
    assert capsys.readouterr().out == ""
