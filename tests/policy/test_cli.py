# ruff: noqa: E501  (table-driven cases read best one per line)
"""`portal-gateway policy check|test|explain` through main(argv): outputs and exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.policy.cli import main, register

from .conftest import POLICY, ROOT, ROUTES, TESTS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["policy", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_register_adds_policy_commands() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["policy", "check", "--policy", str(POLICY)])
    assert args.policy_command == "check" and callable(args.func)


def test_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "check", "--policy", str(POLICY), "--routes", str(ROUTES))
    assert code == 0 and out.startswith("OK ") and "revision" in out


def test_check_reports_file_line_col(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "p.polar"
    bad.write_text(POLICY.read_text().replace("user.holds_line(line);", "user.hodls_line(line);", 1))
    code, out = run(capsys, "check", "--policy", str(bad), "--routes", "")
    assert code == 1
    assert f"{bad}:" in out and "hodls_line" in out and "FAILED" in out
    assert "Traceback" not in out


def test_test_passes_pytest_like(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "test", "--policy", str(POLICY), str(TESTS))
    assert code == 0 and " passed in " in out and "failed" not in out


def test_test_failure_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text((TESTS / "company_phone.yaml").read_text().replace("view_itemized_bill: deny line_user_scope", "view_itemized_bill: allow", 1))
    code, out = run(capsys, "test", "--policy", str(POLICY), str(t))
    assert code == 1 and "FAILED" in out and "expected allow, got deny line_user_scope" in out and "2 failed" in out  # lukas and lukas_with_totp share the case


def test_test_malformed_table_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text("cases: [{actor: ghost, resource: 'line:1', expect: {view_usage: allow}}]")
    code, out = run(capsys, "test", "--policy", str(POLICY), str(t))
    assert code == 2 and "unknown actor 'ghost'" in out and "Traceback" not in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["explain", "--actor", "nobody", "--action", "view_usage", "--resource", "line:1"], "unknown demo person"),
        (["explain", "--actor", "anna", "--action", "view_usag", "--resource", "line:1"], "not a declared permission"),
        (["explain", "--actor", "anna", "--action", "view_usage", "--resource", "line"], "resource must look like"),
        (["explain", "--actor", "role=king", "--action", "view_usage", "--resource", "line:1"], "role must be one of"),
        (["explain", "--actor", "anna", "--action", "view_usage", "--resource", "line:1", "--world", "/nope.yaml"], "cannot read"),
        (["check", "--policy", "/nope.polar"], "policy file not found"),
        (["test", "--policy", str(POLICY), "/nope/dir"], "no such test file"),
    ],
)
def test_malformed_input_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    if "--policy" not in argv:
        argv = [*argv, "--policy", str(POLICY)]
    code, out = run(capsys, *argv)
    assert code == 2 and needle in out and "Traceback" not in out


def test_explain_allow(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "explain", "--policy", str(POLICY), "--actor", "sophie", "--action", "view_usage", "--resource", "line:436641000020")
    assert code == 0
    assert "decision:  allow" in out and 'allow(user: User, "view_usage", line: Line)' in out and "revision" in out


def test_explain_step_up_and_deny(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "explain", "--policy", str(POLICY), "--actor", "anna", "--action", "view_puk", "--resource", "line:436641000001")
    assert code == 0 and "decision:  step_up" in out and "step_up(" in out
    code, out = run(capsys, "explain", "--policy", str(POLICY), "--actor", "anna", "--action", "view_puk", "--resource", "line:436641000001", "--second-factor", "fresh")
    assert "decision:  allow" in out
    code, out = run(capsys, "explain", "--policy", str(POLICY), "--actor", "lukas", "--action", "view_itemized_bill", "--resource", "line:436641000040", "--lang", "de")
    assert "deny (line_user_scope)" in out and "deny_reason(" in out and "Benutzer-Login" in out
    code, out = run(capsys, "explain", "--policy", str(POLICY), "--actor", "anna", "--action", "view_usage", "--resource", "line:436641000010")
    assert "not_found" in out
    code, out = run(capsys, "explain", "--policy", str(POLICY), "--actor", "role=customer,bound_customer=1000010,second_factor=fresh", "--action", "cancel_contract", "--resource", "contract:ct-1000010")
    assert "decision:  allow" in out


def test_cwd_defaults(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out = run(capsys, "test", "-k", "registration")
    assert code == 0 and "registration.yaml" in out
