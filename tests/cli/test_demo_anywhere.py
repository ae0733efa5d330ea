"""`portal-gateway demo` works from any directory: it runs in the checkout beside the package."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from deploy.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False




def test_demo_started_from_another_directory_serves_the_portal(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "portal-gateway"
    if not exe.exists():
        pytest.fail("the portal-gateway console script is not installed in this environment")
    port, backend_port, ops_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen(  # noqa: S603
        [str(exe), "demo", "--port", str(port), "--backend-port", str(backend_port), "--ops-port", str(ops_port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as answer:
                    status = json.loads(answer.read())
                    break
            except OSError:
                time.sleep(0.2)
        assert status is not None, "the demo did not answer /api/status"
        assert status["status"] == "ok"
        assert not (tmp_path / "var").exists(), "the demo wrote its state into the directory it was started from"
        # Readiness details and metrics are on the operations listener, not on the client port.
        with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/_gateway/ready", timeout=5) as answer:
            assert json.loads(answer.read())["status"] in ("ready", "degraded")
        with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/_gateway/metrics", timeout=5) as answer:
            assert b"portal_gateway_requests" in answer.read()
        for path in ("/_gateway/ready", "/_gateway/metrics"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
                raise AssertionError(f"{path} is served on the client port")
            except urllib.error.HTTPError as refused:
                assert refused.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    # One log format: apart from the banner for people, every line (gateway, its server, the demo
    # backend, their HTTP clients) is a JSON object.
    banner_start, banner_end = out.index("portal-gateway demo\n"), out.index("Press Ctrl-C to stop.")
    logs = (out[:banner_start] + out[banner_end + len("Press Ctrl-C to stop."):]).splitlines()
    not_json = [line for line in logs if line.strip() and not _is_json(line)]
    assert not not_json, not_json[:5]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("portal-gateway 0.")
