"""`portal-gateway decisions` and the decision-log writer against odd records, closed pipes and log rotation."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.policy import decisions
from gateway.policy.decision_log import DecisionLog
from gateway.policy.decisions import DecisionFilter, run

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "portal-gateway"


def _rec(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "decision_id": f"d{i}", "time": "2026-12-01T10:00:00+00:00", "request_id": f"r{i}",
        "subject": "acc_anna", "access_level": "full", "action": "view_usage", "resource_type": "line",
        "resource_id": "436641000001", "outcome": "deny", "reason": "line_user_scope", "policy_revision": "x",
        "latency_us": 50,
    }
    base.update(kw)
    return base


def _line(i: int, **kw: object) -> str:
    return json.dumps(_rec(i, **kw)) + "\n"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["decisions", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. valid JSON, wrong shape -----------------------------------------------------------------

ODD = [
    '{"decision_id":"y","outcome":"deny","reason":["a"],"subject":{"x":1},"time":"2026-13-45T99:00"}',
    json.dumps(_rec(90, time=1733047200)),          # time a number
    json.dumps(_rec(91, subject={"id": "x"})),      # subject an object
    json.dumps(_rec(92, outcome=1)),                # outcome a number
    json.dumps(_rec(93, latency_us="fast")),        # latency a string
    json.dumps(_rec(94, shadow_outcome=["allow"])),
    "[1, 2]", "42", '"a string"', "null", "true",
]


@pytest.fixture
def odd_log(tmp_path: Path) -> Path:
    path = tmp_path / "odd.jsonl"
    path.write_text(_line(1) + "\n".join(ODD) + "\n" + _line(2))
    return path


def test_odd_field_types_are_skipped_not_a_traceback(odd_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in ((), ("--outcome", "deny"), ("--json",), ("--summary",), ("--shadow",), ("--shadow", "--summary"),
                 ("--since", "2026-01-01")):
        code, out, err = _run(capsys, str(odd_log), *args)
        assert code == 0, (args, err)
        assert "Traceback" not in err
        assert f"skipped {len(ODD)} line(s) that are not decision records (the first: line 2)" in err, args
    _, out, _ = _run(capsys, str(odd_log))
    assert [line.split()[-1] for line in out.splitlines()] == ["d1", "d2"]
    _, out, _ = _run(capsys, str(odd_log), "--summary")
    assert out.startswith("2 decisions")


def test_render_never_format_specs_a_non_string() -> None:
    text = decisions.render({"decision_id": "d", "outcome": 3, "reason": ["a"], "resource_type": {"a": 1}})
    assert "['a']" in text and text.endswith("d")


# --- 2. a pipe that closes early ----------------------------------------------------------------


def test_a_closed_pipe_ends_quietly_like_grep(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("".join(_line(i) for i in range(20000)))  # a few MB: more than any pipe buffer
    proc = subprocess.Popen(  # noqa: S603
        [str(EXE), "decisions", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().split()[-1] == b"d0"
    proc.stdout.close()  # what `| head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 141  # 128 + SIGPIPE, what grep and cat give the shell
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_a_closed_pipe_ends_follow_mode_quietly(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(_line(1))
    proc = subprocess.Popen(  # noqa: S603
        [str(EXE), "decisions", str(path), "--follow", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert json.loads(proc.stdout.readline())["decision_id"] == "d1"
        proc.stdout.close()
        with path.open("a") as fh:
            for i in range(2, 5):
                fh.write(_line(i))
                fh.flush()
                time.sleep(0.3)
        assert proc.wait(10) == 141
        assert "Traceback" not in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# --- 3. follow mode across rotation, and --follow --summary -------------------------------------


class _Following:
    """run(follow_mode=True) in a thread, with what it printed so far."""

    def __init__(self, path: Path, **kw: object) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self._stop = threading.Event()
        self.code: int | None = None

        def target() -> None:
            self.code = run(path, DecisionFilter(), summary=False, as_json=True, follow_mode=True,
                            out=self.out, err=self.err, poll=0.02, stop=self._stop.is_set, **kw)  # type: ignore[arg-type]

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def ids(self) -> list[str]:
        return [json.loads(x)["decision_id"] for x in self.out.getvalue().splitlines()]

    def wait_for(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, (self.ids(), self.err.getvalue())
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert self.code == 0


@pytest.fixture
def following(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], _Following]]]:
    path = tmp_path / "decisions.jsonl"
    path.write_text(_line(1) + _line(2))
    started: list[_Following] = []

    def start() -> _Following:
        started.append(_Following(path))
        return started[-1]

    yield path, start
    for f in started:
        f.stop()


def _append(path: Path, *lines: str) -> None:
    with path.open("a") as fh:
        fh.write("".join(lines))


def test_follow_reads_the_new_file_after_a_rename_rotation(
    following: tuple[Path, Callable[[], _Following]],
) -> None:
    path, start = following
    f = start()
    f.wait_for(lambda: f.ids() == ["d1", "d2"])
    rotated = path.with_name("decisions.jsonl.1")
    os.rename(path, rotated)                      # logrotate `create`: rename ...
    _append(rotated, _line(3))                    # ... the writer has not reopened yet ...
    path.write_text(_line(4) + _line(5))          # ... a new file under the old name
    f.wait_for(lambda: sorted(f.ids()) == ["d1", "d2", "d3", "d4", "d5"])
    assert "was rotated, following the new file" in f.err.getvalue()
    _append(rotated, _line(6))                    # a late writer to the old file, within the grace time
    _append(path, _line(7))
    f.wait_for(lambda: {"d6", "d7"} <= set(f.ids()))


def test_follow_reads_again_from_the_start_after_copytruncate(
    following: tuple[Path, Callable[[], _Following]],
) -> None:
    path, start = following
    f = start()
    f.wait_for(lambda: f.ids() == ["d1", "d2"])
    shutil.copy(path, path.with_name("decisions.jsonl.1"))  # logrotate `copytruncate`
    with path.open("r+") as fh:
        fh.truncate(0)
    time.sleep(0.2)
    _append(path, _line(3))
    f.wait_for(lambda: f.ids() == ["d1", "d2", "d3"])
    assert "was truncated, reading it from the start" in f.err.getvalue()


def test_follow_notes_skipped_lines_as_they_arrive(following: tuple[Path, Callable[[], _Following]]) -> None:
    path, start = following
    f = start()
    f.wait_for(lambda: f.ids() == ["d1", "d2"])
    _append(path, '{"decision_id":"y","outcome":"deny","reason":["a"]}\n', "not json\n", _line(3))
    f.wait_for(lambda: f.ids() == ["d1", "d2", "d3"])
    err = f.err.getvalue()
    assert "skipped line 3 of" in err and "(1 so far)" in err
    assert "skipped line 4 of" in err and "(2 so far)" in err
    assert "Traceback" not in err


def test_follow_with_summary_is_a_usage_error(odd_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(odd_log), "--follow", "--summary")
    assert code == 2 and out == ""
    assert "--follow and --summary do not go together" in err


# --- 5. smaller usability gaps ------------------------------------------------------------------


def test_an_unknown_outcome_is_a_usage_error_listing_the_outcomes(
    odd_log: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(capsys, str(odd_log), "--outcome", "denied")
    assert code == 2 and out == ""
    assert "--outcome 'denied' is not an outcome; the outcomes are: allow, deny, not_found, step_up, unavailable" \
        in err


def test_shadow_summary_counts_the_shadow_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.jsonl"
    lines = []
    for i in range(3):
        lines.append(_line(i, outcome="allow", reason="allowed"))
        lines.append(_line(i, outcome="allow", reason="allowed", shadow_outcome="deny",
                           shadow_reason="not_permitted", shadow_revision="y"))
    lines.append(_line(9, outcome="deny", reason="line_user_scope", shadow_outcome="allow",
                       shadow_reason="allowed", shadow_revision="y"))
    path.write_text("".join(lines))
    code, out, _ = _run(capsys, str(path), "--shadow", "--summary")
    assert code == 0
    assert out.startswith("4 shadow disagreements")
    assert "       3  allow → deny" in out
    assert "       1  deny → allow" in out
    assert "       3  allowed → not_permitted" in out


def test_route_without_a_configuration_names_what_it_needs(
    odd_log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PORTAL_GATEWAY_CONFIG", raising=False)
    args = build_parser().parse_args(["decisions", str(odd_log), "--route", "PUT /api/lines/{msisdn}/tariff"])
    assert decisions.command(args) == 2
    err = capsys.readouterr().err
    assert "--route needs the route table of a configuration: give --config FILE" in err
    assert "unknown upstream" not in err
    # With a configuration it resolves as before.
    args = build_parser().parse_args(["decisions", str(odd_log), "--config", str(ROOT / "config" / "gateway.toml"),
                                      "--route", "PUT /api/lines/{msisdn}/tariff", "--json"])
    assert decisions.command(args) == 0


# --- 4. the gateway's writer across rotation ----------------------------------------------------


def _write_while(log: DecisionLog, n: int, rotate: Callable[[], None], at: int) -> None:
    def writer() -> None:
        for i in range(n):
            log.record(decision_id=f"d{i}", outcome="allow")
            time.sleep(0.002)

    t = threading.Thread(target=writer)
    t.start()
    path = Path(log.target)
    deadline = time.monotonic() + 10
    while path.exists() and path.read_text().count("\n") < at:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    rotate()
    t.join(30)
    log.close()


def _ids(path: Path) -> list[str]:
    return [json.loads(x)["decision_id"] for x in path.read_text().splitlines()]


def test_writer_follows_a_rename_rotation(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    rotated = tmp_path / "decisions.jsonl.1"
    log = DecisionLog(str(path), clock=time.time, reopen_check=0.02)
    n = 400
    _write_while(log, n, lambda: os.rename(path, rotated), at=100)
    old, new = _ids(rotated), _ids(path)
    assert old[:100] == [f"d{i}" for i in range(100)]
    assert old + new == [f"d{i}" for i in range(n)]  # none lost, none twice, in order
    assert len(new) > n // 2  # the writer moved to the new file within a few records


def test_writer_survives_copytruncate(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(str(path), clock=time.time, reopen_check=0.02)
    n = 400

    def copytruncate() -> None:
        shutil.copy(path, tmp_path / "decisions.jsonl.1")
        with path.open("r+") as fh:
            fh.truncate(0)

    _write_while(log, n, copytruncate, at=100)
    raw = path.read_bytes()
    assert b"\0" not in raw  # appended at the new end, not at the old offset
    new = _ids(path)
    assert new[-1] == f"d{n - 1}" and len(new) < n
    copied = _ids(tmp_path / "decisions.jsonl.1")
    assert copied[:100] == [f"d{i}" for i in range(100)]
    assert set(copied) | set(new) <= {f"d{i}" for i in range(n)}
