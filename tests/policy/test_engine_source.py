"""The source the engine loads: redundant `String` specializers blanked, nothing else moved."""

from __future__ import annotations

from gateway.policy.check import check_policy
from gateway.policy.engine import PolicyEngine, engine_source
from gateway.policy.model import polar_classes


def test_only_engine_filled_string_arguments_are_blanked(engine: PolicyEngine) -> None:
    loaded = engine_source(engine.source, engine.facts)
    assert len(loaded) == len(engine.source)
    assert loaded.splitlines() == [line.replace(": String", " " * len(": String"))
                                   if line.startswith(("deny_reason(", "registration_refusal(")) else line
                                   for line in engine.source.splitlines()]
    assert 'deny_reason(user: User, action        , _resource, "restricted_session") if' in loaded


def test_other_positions_and_rules_keep_their_specializer() -> None:
    source = (
        'permission("view_usage", "read");\n'
        'allow(user: User, "view_usage", line: Line) if user.holds_line(line);\n'
        'has_relation(user: User, line: Line) if user.holds_line(line);\n'
        'deny_reason(user: User, action: String, _r, "not_permitted") if permission(action, "read") and user.full;\n'
        'can_register(target: RegistrationTarget, proof: String, "line_user", "restricted") if '
        'target.is_line and proof = "sms_tan";\n'
        'registration_refusal(_t: RegistrationTarget, _p, reason: String) if reason = "x";\n'
    )
    facts = check_policy(source, "t.polar", polar_classes())  # its problems do not matter here
    loaded = engine_source(source, facts)
    assert 'deny_reason(user: User, action        , _r, "not_permitted")' in loaded
    assert "can_register(target: RegistrationTarget, proof: String," in loaded  # first answer counts: untouched
    assert "reason: String" in loaded  # not the engine-filled argument
    assert loaded.count("\n") == source.count("\n")
