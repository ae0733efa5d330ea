"""`portal-gateway policy diff OLD NEW`: the groups of changed cells, the invariant gate, git revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.cli import main

from .conftest import POLICY, ROOT, ROUTES, TESTS

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
