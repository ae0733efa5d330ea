"""One log format and one access line per request, the gateway's own (gateway/logs.py).

A worker built by the uvicorn factory (`gateway.app:create_app`, what `serve --workers N` and
docs/deployment.md run) sets up its logging itself. That set-up must not give uvicorn's access
logger a handler (uvicorn then writes a second line for every request and pays a JSON encoding
for it on the hot path), and starting the operations listener must not re-run uvicorn's own
logging set-up (which turned every later uvicorn line back into its plain format, at WARNING)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.harness import stop
from tests.integration.conftest import ROOT
from tests.servers.misbehaving import free_port


@pytest.mark.parametrize(("access_log", "ops"), [("true", True), ("false", True), ("false", False)])
def test_the_factory_worker_writes_only_the_gateways_access_line(tmp_path: Path, access_log: str, ops: bool) -> None:
    port, ops_port = free_port(), (free_port() if ops else 0)
    env = {
        **os.environ,
        "PORTAL_GATEWAY_CONFIG": str(ROOT / "config" / "demo.toml"),
        "PORTAL_GATEWAY_SERVER__PORT": str(port),
        "PORTAL_GATEWAY_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PORTAL_GATEWAY_SERVER__OPS_PORT": str(ops_port),
        "PORTAL_GATEWAY_SERVER__DATA_DIR": str(tmp_path),
        "PORTAL_GATEWAY_SERVER__ACCESS_LOG": access_log,
        "PORTAL_GATEWAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/portal.db",
        "PORTAL_GATEWAY_POLICY__WATCH": "false",
        "PORTAL_GATEWAY_POLICY__DECISION_LOG": "off",
        "PORTAL_GATEWAY_SMS__OUTBOX_PATH": str(tmp_path / "sms-outbox.jsonl"),
    }
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/_gateway/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            assert proc.poll() is None, err.read_text()[-3000:]
            sent = 20
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(sent):
                    # No backend runs: the public route answers 502, which is logged like any answer.
                    assert client.get("/api/status").status_code == 502
        finally:
            stop(proc)  # SIGTERM: uvicorn logs its shutdown, which the last assertion reads
    said = out.read_text() + err.read_text()
    print("SAID", said[-1500:])
    lines = [line for line in said.splitlines() if "/api/status" in line]
    assert not [line for line in lines if "uvicorn.access" in line], lines[:3]
    assert len(lines) == (sent if access_log == "true" else 0), lines[:3]
    records = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    # uvicorn's own lines after start-up are still the gateway's JSON at INFO.
    assert any(r["logger"] == "uvicorn.error" and r["message"].startswith("Shutting down") for r in records)
