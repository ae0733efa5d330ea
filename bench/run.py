"""`make bench`: wrk against the backend, nginx, two bare Python proxies and the gateway.

Everything runs in one go on this machine so ratios compare like with like:
each server is its own process with one worker on loopback; wrk uses 2 threads
and 32 connections. Results go to stdout as a table and into
docs/benchmarks.md (between the BENCH-TABLE markers), with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _uvicorn(
    target: str, port: int, env: dict[str, str] | None = None, factory: bool = False
) -> subprocess.Popen[bytes]:
    cmd = [PY, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
           "--log-level", "warning", "--no-proxy-headers", "--no-server-header", "--loop", "uvloop",
           "--http", "httptools"]
    if factory:
        cmd.append("--factory")
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _parse_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000, "m": value * 60000}[unit]


def _wrk(name: str, url: str, seconds: int, connections: int) -> Result:
    # Warm up pools and caches, then measure.
    subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", url], capture_output=True, check=False)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=False,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _parse_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _parse_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    err = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(err.group(1)) if err else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return Result(name, rps, p50, p99, errors)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _nginx(port: int, workdir: Path, upstream_port: int) -> subprocess.Popen[bytes] | None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return None
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {workdir}; proxy_temp_path {workdir}; fastcgi_temp_path {workdir};
  uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
  upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    return subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _gateway_config(workdir: Path, port: int, upstream_port: int) -> Path:
    cfg = workdir / "gateway.toml"
    cfg.write_text(f"""
[server]
port = {port}
data_dir = "{workdir}/var"
access_log = false
cookie_secure = true

[database]
url = "sqlite+aiosqlite:///{workdir}/var/bench.db"

[directory]
seed_file = "demo/directory.yaml"

[policy]
path = "{ROOT}/policies/portal.polar"
tests = "{ROOT}/policies/tests"
watch = false
decision_log = "off"

[routes]
path = "{ROOT}/config/routes.toml"

[totp]
encryption_key = "{secrets.token_urlsafe(32)}"

[upstreams.portal]
url = "http://127.0.0.1:{upstream_port}"
""")
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--access-log", action="store_true", help="gateway with its access log on (to /dev/null)")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    results: list[Result] = []
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "var").mkdir()
        try:
            # Every server on a port free right now: a leftover process on a fixed
            # port would silently be measured instead.
            upstream_port = _free_port()
            upstream = _uvicorn("bench.upstream:app", upstream_port)
            procs.append(upstream)
            _wait_port(upstream_port)
            results.append(_wrk("backend directly", f"http://127.0.0.1:{upstream_port}/api/status",
                                args.seconds, args.connections))

            nginx_port = _free_port()
            nginx = _nginx(nginx_port, work, upstream_port)
            if nginx is not None:
                procs.append(nginx)
                _wait_port(nginx_port)
                results.append(_wrk("nginx reverse proxy", f"http://127.0.0.1:{nginx_port}/api/status",
                                    args.seconds, args.connections))
                _stop(nginx)

            env = {"BENCH_UPSTREAM": f"http://127.0.0.1:{upstream_port}"}
            for name, target in (("bare Starlette + httpx", "bench.bare_httpx:app"),
                                 ("bare ASGI + aiohttp", "bench.bare_aiohttp:app"),
                                 ("bare ASGI + gateway.http11", "bench.bare_http11:app")):
                port = _free_port()
                proc = _uvicorn(target, port, env)
                procs.append(proc)
                _wait_port(port)
                results.append(_wrk(name, f"http://127.0.0.1:{port}/api/status", args.seconds, args.connections))
                _stop(proc)

            gw_port = _free_port()
            cfg = _gateway_config(work, gw_port, upstream_port)
            gw_env = {"PORTAL_GATEWAY_CONFIG": str(cfg)}
            if args.access_log:
                gw_env["PORTAL_GATEWAY_SERVER__ACCESS_LOG"] = "true"
            gateway = _uvicorn("gateway.app:create_app", gw_port, gw_env, factory=True)
            procs.append(gateway)
            try:
                _wait_port(gw_port, 60)
            except RuntimeError:
                err = gateway.stderr.read().decode() if gateway.stderr else ""  # type: ignore[union-attr]
                print(f"the gateway did not start:\n{err}", file=sys.stderr)
                return 1
            results.append(_wrk("gateway, public route", f"http://127.0.0.1:{gw_port}/api/status",
                                args.seconds, args.connections))
            _stop(gateway)
        finally:
            for p in procs:
                if p.poll() is None:
                    _stop(p)

    by_name = {r.name: r for r in results}
    bare = [r for r in results if r.name.startswith("bare ")]
    fastest_bare = max(bare, key=lambda r: r.rps)
    httpx_bare = by_name["bare Starlette + httpx"]
    header = f"| target | req/s | p50 ms | p99 ms | errors | vs fastest bare ({fastest_bare.name}) | vs bare httpx |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | "
            f"{r.rps / fastest_bare.rps:.2f} | {r.rps / httpx_bare.rps:.2f} |"
        )
    gw = by_name["gateway, public route"]
    verdict = "meets" if gw.rps >= 0.9 * fastest_bare.rps else "MISSES"
    machine = f"{platform.node()} · {platform.machine()} · {os.cpu_count()} cores · Python {platform.python_version()}"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary = (
        f"Measured {stamp} on {machine}; wrk -t2 -c{args.connections} -d{args.seconds}s, one worker each.\n"
        f"The gateway on a public route reaches {gw.rps / fastest_bare.rps:.0%} of the fastest bare Python "
        f"proxy, {fastest_bare.name} ({verdict} the ≥ 90 % target)."
    )
    table = "\n".join(lines)
    print(table)
    print()
    print(summary)
    if not args.no_write:
        doc = ROOT / "docs" / "benchmarks.md"
        text = doc.read_text() if doc.exists() else "# Benchmarks\n\n<!-- BENCH-TABLE -->\n<!-- /BENCH-TABLE -->\n"
        block = f"<!-- BENCH-TABLE -->\n{summary}\n\n{table}\n<!-- /BENCH-TABLE -->"
        if "<!-- BENCH-TABLE -->" in text:
            text = re.sub(r"<!-- BENCH-TABLE -->.*?<!-- /BENCH-TABLE -->", lambda _: block, text, flags=re.S)
        else:
            text += "\n" + block + "\n"
        doc.write_text(text)
        print(f"\nwritten to {doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
