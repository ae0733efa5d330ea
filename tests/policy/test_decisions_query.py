"""`portal-gateway decisions`: filter, summarize and follow the JSON decision log."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


def _rec(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "decision_id": f"d{i}", "time": (NOW - timedelta(minutes=60 - i)).isoformat(), "request_id": f"r{i}",
        "subject": "acc_anna", "access_level": "full", "action": "view_usage", "resource_type": "line",
        "resource_id": "436641000001", "outcome": "allow", "reason": "allowed", "policy_revision": "x",
        "latency_us": 50,
    }
    base.update(kw)
    return base


@pytest.fixture
def log(tmp_path: Path) -> Path:
    records = [
        _rec(1),
        _rec(2, subject="line:436641000040", outcome="deny", reason="line_user_scope", action="view_itemized_bill",
             resource_id="436641000040", access_level="restricted"),
        _rec(3, outcome="not_found", reason="no_relation", resource_id="436641000020"),
        _rec(4, outcome="step_up", reason="step_up_required", action="order_sim_swap"),
        _rec(59, subject="line:436641000040", outcome="deny", reason="line_user_scope",
             action="change_tariff", resource_id="436641000040"),
    ]
    path = tmp_path / "decisions.jsonl"
    # A shadow policy's disagreement: a record of its own with the same decision id.
    records.append(_rec(59, subject="line:436641000040", outcome="deny", reason="line_user_scope",
                        action="change_tariff", resource_id="436641000040", shadow_outcome="allow",
                        shadow_reason="allowed", shadow_revision="y"))
    lines = [json.dumps(r) for r in records]
    lines.insert(2, '{"half a record": ')  # a line cut by a full disk
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["decisions", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_filters_by_subject_outcome_reason(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(log), "--subject", "line:436641000040", "--reason", "line_user_scope")
    assert code == 0
    assert [line.split()[-1] for line in out.splitlines()] == ["d2", "d59"]
    assert "skipped 1 line" in err and "Traceback" not in err
    code, out, _ = _run(capsys, str(log), "--outcome", "not_found", "--json")
    assert [json.loads(x)["decision_id"] for x in out.splitlines()] == ["d3"]


def test_filters_by_time_resource_and_route(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, str(log), "--since", "10m")
    assert [line.split()[-1] for line in out.splitlines()] == ["d59"]
    _, out, _ = _run(capsys, str(log), "--until", (NOW - timedelta(minutes=58)).isoformat(), "--json")
    assert [json.loads(x)["decision_id"] for x in out.splitlines()] == ["d1", "d2"]
    _, out, _ = _run(capsys, str(log), "--resource", "line:436641000020", "--json")
    assert [json.loads(x)["decision_id"] for x in out.splitlines()] == ["d3"]
    config = ROOT / "config" / "gateway.toml"
    _, out, _ = _run(capsys, str(log), "--config", str(config), "--route", "PUT /api/lines/{msisdn}/tariff", "--json")
    assert [json.loads(x)["decision_id"] for x in out.splitlines()] == ["d59"]


def test_summary_counts(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, str(log), "--summary")
    assert out.startswith("5 decisions")  # the shadow record is not a decision of its own
    assert "       2  line_user_scope" in out
    assert "       2  line:436641000040" in out
    _, out, _ = _run(capsys, str(log), "--shadow", "--json")
    assert [json.loads(x)["shadow_outcome"] for x in out.splitlines()] == ["allow"]


def test_bad_input_is_a_clear_error(tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, str(tmp_path / "none.jsonl"))
    assert code == 2 and "cannot read" in err and "Traceback" not in err
    code, _, err = _run(capsys, str(log), "--since", "yesterday-ish")
    assert code == 2 and "not a time" in err
    code, _, err = _run(capsys, str(log), "--config", str(ROOT / "config" / "gateway.toml"), "--route", "nope")
    assert code == 2 and "no non-public route named 'nope'" in err
    code, _, err = _run(capsys, "--config", str(ROOT / "config" / "gateway.toml"))
    assert code == 2 and "policy.decision_log is 'stdout'" in err


def test_follow_prints_what_is_appended(log: Path) -> None:
    exe = Path(sys.executable).parent / "portal-gateway"
    proc = subprocess.Popen(  # noqa: S603
        [str(exe), "decisions", str(log), "--follow", "--reason", "line_user_scope", "--json"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        # First what is there, then what is appended while it runs.
        assert [json.loads(proc.stdout.readline())["decision_id"] for _ in range(2)] == ["d2", "d59"]
        with log.open("a") as fh:
            fh.write(json.dumps(_rec(70, outcome="allow")) + "\n")
            fh.write(json.dumps(_rec(71, outcome="deny", reason="line_user_scope")) + "\n")
        assert json.loads(proc.stdout.readline())["decision_id"] == "d71"
    finally:
        proc.terminate()
        proc.wait(10)
