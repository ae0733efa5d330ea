"""What every bench target shares: start a server on a free loopback port, drive it with wrk."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from deploy.ports import free_port  # noqa: F401 - re-exported for bench/run.py and deploy/chaos.py

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    connections: int = 32


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")




def uvicorn(
    target: str, port: int, env: dict[str, str] | None = None, factory: bool = False, workers: int = 1
) -> subprocess.Popen[bytes]:
    cmd = [PY, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
           "--log-level", "warning", "--no-proxy-headers", "--no-server-header", "--loop", "uvloop",
           "--http", "httptools"]
    if factory:
        cmd.append("--factory")
    if workers > 1:
        cmd += ["--workers", str(workers)]
    # The server's stderr goes to a file, never to a pipe nobody reads while it runs: a
    # server that logs under load would fill the pipe and block on its next write.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=log)
    _LOGS[proc.pid] = log
    return proc


_LOGS: dict[int, IO[bytes]] = {}


def server_log(proc: subprocess.Popen[bytes], tail: int = 3000) -> str:
    """The last `tail` characters a server started by `uvicorn` wrote to stderr."""
    log = _LOGS.get(proc.pid)
    if log is None:
        return ""
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-tail:]


def parse_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000, "m": value * 60000}[unit]


@dataclass(frozen=True)
class Load:
    """How wrk drives a target: duration, warm-up, and optional header / Lua script."""

    seconds: int
    warmup: int = 2
    header: str | None = None
    script: Path | None = None
    script_args: tuple[str, ...] = ()


def wrk_cmd(url: str, connections: int, seconds: int, load: Load, latency: bool) -> list[str]:
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    if latency:
        cmd.append("--latency")
    if load.header:
        cmd += ["-H", load.header]
    if load.script:
        cmd += ["-s", str(load.script)]
    cmd.append(url)
    if load.script_args:
        cmd += ["--", *load.script_args]
    return cmd


def wrk(name: str, url: str, seconds: int, connections: int, load: Load | None = None) -> Result:
    load = load or Load(seconds)
    if load.warmup:
        # Warm up pools and caches, then measure.
        subprocess.run(wrk_cmd(url, connections, load.warmup, load, False), capture_output=True, check=False)
    out = subprocess.run(wrk_cmd(url, connections, seconds, load, True), capture_output=True, text=True,
                         check=False).stdout
    return parse_wrk(name, out, connections)


def parse_wrk(name: str, out: str, connections: int) -> Result:
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk gave no result for {name}:\n{out}")
    rps = float(found.group(1))
    p50 = parse_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    err = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(err.group(1)) if err else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    done = re.search(r"(\d+) requests in", out)
    return Result(name, rps, p50, p99, errors, int(done.group(1)) if done else 0, connections)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log = _LOGS.pop(proc.pid, None)
    if log is not None:
        log.close()
