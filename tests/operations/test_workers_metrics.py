"""`serve --workers 2`: a scrape of the operations listener reaches one worker, and still shows
the traffic of both (gateway/metrics_workers.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.metrics_workers import merge_snapshots
from tests.integration.conftest import ROOT
from tests.servers.misbehaving import free_port


def _total(text: str) -> float:
    """Every answered request on the client port, whatever its route and status."""
    pattern = re.compile(r"^portal_gateway_requests_total\{[^}]*\} (\S+)$")
    return sum(float(m.group(1)) for m in map(pattern.match, text.splitlines()) if m)


def test_merge_sums_counters_keeps_dead_workers_counts_and_takes_live_gauges_minimum() -> None:
    a = ('# HELP c_total x\n# TYPE c_total counter\nc_total{r="1"} 2.0\n'
         '# HELP g x\n# TYPE g gauge\ng{d="store"} 1.0\n')
    b = a.replace("2.0", "3.0").replace("1.0", "0.0")
    dead = a.replace("2.0", "5.0").replace("g{d=\"store\"} 1.0", "g{d=\"store\"} 0.0")
    text, live = merge_snapshots([(a, True), (b, True), (dead, False)])
    assert live == 2
    assert 'c_total{r="1"} 10.0' in text
    assert 'g{d="store"} 0.0' in text  # one live worker is not ready
    text, _ = merge_snapshots([(a, True), (dead, False)])
    assert 'g{d="store"} 1.0' in text  # a dead worker's gauge does not count


def test_two_workers_one_scrape_shows_both(tmp_path: Path) -> None:
    port, ops_port = free_port(), free_port()
    env = {
        **os.environ,
        "PORTAL_GATEWAY_SERVER__PORT": str(port),
        "PORTAL_GATEWAY_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PORTAL_GATEWAY_SERVER__OPS_PORT": str(ops_port),
        "PORTAL_GATEWAY_SERVER__DATA_DIR": str(tmp_path),
        "PORTAL_GATEWAY_SERVER__ACCESS_LOG": "false",
        "PORTAL_GATEWAY_STORE__BACKEND": "redis",
        "PORTAL_GATEWAY_STORE__URL": "redis://127.0.0.1:6379/0",
        "PORTAL_GATEWAY_STORE__KEY_PREFIX": f"pgtest:{uuid.uuid4().hex[:8]}:",
        "PORTAL_GATEWAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/portal.db",
        "PORTAL_GATEWAY_DIRECTORY__SEED_FILE": "",
        "PORTAL_GATEWAY_POLICY__WATCH": "false",
        "PORTAL_GATEWAY_POLICY__DECISION_LOG": "off",
        "PORTAL_GATEWAY_AUTH__DEMO": "false",
        "PORTAL_GATEWAY_TOTP__ENCRYPTION_KEY": "k" * 44,
        "PORTAL_GATEWAY_SMS__OUTBOX_PATH": str(tmp_path / "sms-outbox.jsonl"),
    }
    exe = Path(sys.executable).parent / "portal-gateway"
    proc = subprocess.Popen(  # noqa: S603
        [str(exe), "serve", "--config", str(ROOT / "config" / "demo.toml"), "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        workers = 0.0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                text = httpx.get(f"http://127.0.0.1:{ops_port}/_gateway/metrics", timeout=2).text
                workers = float(re.search(r"^portal_gateway_workers (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
                if workers == 2:
                    break
            except (httpx.HTTPError, AttributeError):
                pass
            time.sleep(0.3)
        if proc.poll() is not None:
            pytest.fail(f"serve --workers 2 exited: {proc.stdout.read().decode()[-3000:]}")  # type: ignore[union-attr]
        assert workers == 2
        sent = 120
        for _ in range(sent):
            # A new connection each time, so both workers take some. No backend runs: the
            # public route answers 502, which counts like any other answer.
            assert httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5).status_code == 502
        # A worker's snapshot is at most one interval (1 s) old: once the sum is complete and two
        # more intervals have passed, every scrape, whichever worker answers it, adds up the same.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _total(httpx.get(f"http://127.0.0.1:{ops_port}/_gateway/metrics", timeout=5).text) == sent:
                break
            time.sleep(0.2)
        time.sleep(2.5)
        for _ in range(6):
            text = httpx.get(f"http://127.0.0.1:{ops_port}/_gateway/metrics", timeout=5).text
            assert _total(text) == sent, text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
