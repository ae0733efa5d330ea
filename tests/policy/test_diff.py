"""`portal-gateway policy diff OLD NEW`: the groups of changed cells, the invariant gate, git revisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.policy.cli import DEMO_ACTORS, main
from gateway.policy.diff import MARKDOWN_LIMIT, diff_policies, render
from gateway.policy.engine import PolicyEngine, build_engine, read_route_actions
from gateway.policy.testing import demo_world

from .conftest import MBS, POLICY, ROOT, ROUTES, TESTS

ITEMIZED_OLD = 'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);'
RESTRICTED_OLD = "manages_line(user: User, line: Line) if user.full and user.holds_line(line);"


def variant(tmp_path: Path, old: str, new: str) -> Path:
    source = POLICY.read_text(encoding="utf-8")
    assert old in source
    path = tmp_path / "candidate.polar"
    path.write_text(source.replace(old, new), encoding="utf-8")
    return path


def diff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["policy", "diff", *argv, "--routes", str(ROUTES), "--tests", str(TESTS), "--worlds", "2"])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_identical_policies_report_no_change(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = diff(capsys, str(POLICY), str(POLICY))
    assert code == 0
    assert "no change" in out and "keeps all six" in out
    assert "tables:" in out and "demo world:" in out and "generated worlds:" in out


def test_allowing_line_users_the_itemized_bill_shows_exactly_that_group(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = variant(
        tmp_path, ITEMIZED_OLD,
        ITEMIZED_OLD + '\nallow(user: User, "view_itemized_bill", line: Line) if user.uses_line(line);',
    )
    code, out = diff(capsys, str(POLICY), str(new), "--explain")
    assert code == 0, out  # a change alone is no failure: it keeps the invariants
    assert "in 1 groups" in out
    assert "line users: view_itemized_bill on own line: deny line_user_scope → allow" in out
    # --explain shows the deciding rule of each side
    assert "old: " in out and "line_user_scope" in out and f"new: {new}:" in out
    assert "lukas" in out  # the demo's company-phone user is among the cells


def test_fail_on_change_gates_any_change(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    new = variant(
        tmp_path, ITEMIZED_OLD,
        ITEMIZED_OLD + '\nallow(user: User, "view_itemized_bill", line: Line) if user.uses_line(line);',
    )
    code, _ = diff(capsys, str(POLICY), str(new), "--fail-on-change", "--no-demo")
    assert code == 1


def test_a_change_breaking_an_invariant_exits_1_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = variant(tmp_path, RESTRICTED_OLD, "manages_line(user: User, line: Line) if user.holds_line(line);")
    code, out = diff(capsys, str(POLICY), str(new), "--format", "markdown")
    assert code == 1
    assert "INVARIANTS BROKEN" in out
    assert "invariant 1: a restricted session never performs a change" in out
    assert "`customers: change_tariff on own line: deny restricted_session → allow`" in out
    # the reverse direction (the fix) breaks nothing
    code, out = diff(capsys, str(new), str(POLICY), "--no-demo")
    assert code == 0 and "keeps all six" in out


def test_vpn_leak_is_invariant_4(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    new = variant(
        tmp_path, "has_relation(_user: User, _vpn: VpnContract);",
        "has_relation(_user: User, _vpn: VpnContract) if 1 = 2;",
    )
    code, out = diff(capsys, str(POLICY), str(new), "--no-demo")
    assert code == 1 and "invariant 4: VPN actions are denied" in out


def test_git_revision_and_errors(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out = diff(capsys, "HEAD:policies/portal.polar", "HEAD", "--no-demo")
    assert code == 0 and "HEAD:policies/portal.polar" in out and "keeps all six" in out
    code, out = diff(capsys, "no-such-rev-xyz", str(POLICY))
    assert code == 2 and "no-such-rev-xyz: not a file, and not a git revision" in out
    assert "Traceback" not in out


def test_broken_new_policy_is_reported_with_file_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = variant(tmp_path, "user.holds_line(line);", "user.hodls_line(line);")
    code, out = diff(capsys, str(POLICY), str(bad))
    assert code == 1 and f"{bad}:" in out and "FAILED" in out


SMS_TAN_OLD = 'can_register(target: RegistrationTarget, "sms_tan", "line_user", "restricted") if'
SMS_TAN_FULL = 'can_register(target: RegistrationTarget, "sms_tan", "customer", "full") if'


def test_registration_escalation_is_reported_not_no_change(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = variant(tmp_path, SMS_TAN_OLD, SMS_TAN_FULL)
    code, out = diff(capsys, str(POLICY), str(new), "--no-demo")
    assert "no change" not in out, out
    assert "registration cells (tables: 38" in out
    group = "registration: sms_tan on a line of a private contract: line_user restricted → customer full"
    assert group in out
    assert "table registration.yaml: register 436641000001 with sms_tan" in out
    # the same change seen through the demo world's lines too
    code, out = diff(capsys, str(POLICY), str(new), "--worlds", "0")
    assert "demo world: register 436641000040 with sms_tan" in out
    assert code == 0  # no invariant speaks of the account kind a proof creates; --fail-on-change gates it
    code, _ = diff(capsys, str(POLICY), str(new), "--no-demo", "--worlds", "0", "--fail-on-change")
    assert code == 1


def test_registration_refusal_without_a_known_reason_breaks_invariant_6(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new = variant(tmp_path, '"company_in_business_station") if', '"made_up_reason") if')
    code, out = diff(capsys, str(POLICY), str(new), "--no-demo", "--worlds", "0")
    assert code == 1
    assert "invariant 6: every refusal carries a known reason" in out
    assert "register 1000020 with sms_tan: refused made_up_reason" in out or "… 1 more" in out


def _engines(new: Path) -> tuple[PolicyEngine, PolicyEngine]:
    routes = read_route_actions(ROUTES)
    return (
        build_engine(POLICY.read_text(encoding="utf-8"), str(POLICY), route_actions=routes, business_station_url=MBS),
        build_engine(new.read_text(encoding="utf-8"), str(new), route_actions=routes, business_station_url=MBS),
    )


def test_markdown_is_capped_and_counts_what_it_leaves_out(tmp_path: Path) -> None:
    new = variant(tmp_path, RESTRICTED_OLD, "manages_line(user: User, line: Line) if user.holds_line(line);")
    old_engine, new_engine = _engines(new)
    report = diff_policies(
        old_engine, new_engine, old_label="old", new_label="new", tables=TESTS,
        route_actions=read_route_actions(ROUTES), demo=None, demo_actors={}, worlds=0, explain=True,
        business_station_url=MBS,
    )
    full = render(report, "markdown", explain=True)
    assert "\n0 of 7 changed cells not shown as examples\n" in full  # under the limit: every example
    capped = render(report, "markdown", explain=True, limit=3000)
    assert len(capped) < 3000 < len(full)
    left = int(capped.split(" of 7 changed cells not shown as examples")[0].rsplit("\n", 1)[-1])
    assert left > 1
    # the invariant section is always whole, and says how many breaches it does not list
    assert "INVARIANTS BROKEN" in capped and "invariant 1:" in capped
    shown = [line for line in capped.splitlines() if "restricted session answered allow" in line]
    assert len(shown) == 3 and f"  - … {len(report.breached()[1]) - 3} more" in capped
    tiny = render(report, "markdown", explain=True, limit=1500)
    assert len(tiny) < 1500 and "… truncated: 7 more groups not shown" in tiny
    assert "7 of 7 changed cells not shown as examples" in tiny and "invariant 1:" in tiny


def test_markdown_with_explain_stays_under_githubs_limit(tmp_path: Path) -> None:
    source = POLICY.read_text(encoding="utf-8")
    assert source.count("user.full and ") >= 3
    new = tmp_path / "broad.polar"
    new.write_text(source.replace("user.full and ", ""), encoding="utf-8")
    old_engine, new_engine = _engines(new)
    report = diff_policies(
        old_engine, new_engine, old_label="old", new_label="new", tables=TESTS,
        route_actions=read_route_actions(ROUTES), demo=demo_world(), demo_actors=DEMO_ACTORS, worlds=2,
        explain=True, business_station_url=MBS,
    )
    text = render(report, "markdown", explain=True)
    assert len(text) < MARKDOWN_LIMIT
    assert "changed cells not shown as examples" in text


def test_load_and_usage_errors_go_to_stderr_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = variant(tmp_path, "user.holds_line(line);", "user.hodls_line(line);")
    code = main(["policy", "diff", str(POLICY), str(bad), "--routes", str(ROUTES), "--no-demo", "--worlds", "0"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert f"{bad}:" in captured.err and "FAILED" in captured.err
    code = main(["policy", "diff", "no-such-rev-xyz", str(POLICY), "--routes", str(ROUTES)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "no-such-rev-xyz" in captured.err
    code = main(["policy", "diff", str(POLICY), str(POLICY), "--worlds", "-1"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "--worlds" in captured.err


def test_identical_content_is_evaluated_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy.polar"
    copy.write_text(POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    calls = {"decide": 0, "register": 0}
    decide, can_register = PolicyEngine.decide, PolicyEngine.can_register

    def counting_decide(self: PolicyEngine, *args: Any, **kwargs: Any) -> Any:
        calls["decide"] += 1
        return decide(self, *args, **kwargs)

    def counting_register(self: PolicyEngine, *args: Any, **kwargs: Any) -> Any:
        calls["register"] += 1
        return can_register(self, *args, **kwargs)

    monkeypatch.setattr(PolicyEngine, "decide", counting_decide)
    monkeypatch.setattr(PolicyEngine, "can_register", counting_register)
    code, out = diff(capsys, str(POLICY), str(copy), "--no-demo", "--worlds", "0")
    assert code == 0 and "same policy (same revision), evaluated once" in out and "keeps all six" in out
    cells = int(out.split(" cells evaluated")[0].rsplit("\n", 1)[-1])
    assert calls["decide"] == cells  # once per cell, not once per side
    registrations = int(out.split(" registration cells")[0].rsplit(" ", 1)[-1])
    assert 0 < calls["register"] <= registrations  # unknown identifiers need no policy at all
    assert "policy diff: tables:" in out  # progress, on stderr
