"""`make bench`: wrk against the backend, nginx, three bare Python proxies and the gateway,
on the public route and on the full path (session, policy, assertion).

Everything runs in one go on this machine so ratios compare like with like: each server
is its own process on loopback, one worker unless a row says otherwise; wrk uses 2
threads. Results go to stdout as tables and into docs/benchmarks.md (between the
BENCH-TABLE, FULLPATH-TABLE and SOAK-TABLE markers), with the machine and date.

    python -m bench.run               # everything, 10 s per measurement
    python -m bench.run --quick       # the same rows, 3 s each: a sanity check in a few minutes
    python -m bench.run --soak        # only the memory soak (RSS over 200,000 requests)
    python -m bench.run --profile     # also py-spy the full path at c=32 and print the top frames
    python -m bench.run --rounds 3    # every full-path row 3 times, interleaved, medians (shared machines)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import scenarios
from bench.harness import ROOT, Load, Result, free_port, server_log, stop, uvicorn, wait_port, wrk


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
                            stderr=subprocess.DEVNULL)


def _gateway_config(workdir: Path, port: int, upstream_port: int) -> Path:
    cfg = workdir / "gateway.toml"
    cfg.write_text(f"""
[server]
port = {port}
data_dir = "{workdir}/var"
access_log = false
cookie_secure = true
# No operations listener: its fixed port would clash with another gateway on this machine.
ops_port = 0

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


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.node()} · {platform.machine()} · {os.cpu_count()} cores ({cpu}) · "
            f"Python {platform.python_version()}")


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _write_block(marker: str, block_text: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"<!-- {marker} -->\n{block_text}\n<!-- /{marker} -->"
    pattern = rf"<!-- {marker} -->.*?<!-- /{marker} -->"
    if re.search(pattern, text, flags=re.S):
        text = re.sub(pattern, lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)
    print(f"\nwritten to {doc.relative_to(ROOT)} ({marker})")


def _baselines(args: argparse.Namespace, work: Path, upstream_port: int) -> str:
    """The public-route table: backend, nginx, bare proxies, the gateway on /api/status."""
    load = Load(args.seconds, args.warmup)
    results: list[Result] = []
    results.append(wrk("backend directly", f"http://127.0.0.1:{upstream_port}/api/status",
                       args.seconds, args.connections, load))
    nginx_port = free_port()
    nginx = _nginx(nginx_port, work, upstream_port)
    if nginx is not None:
        try:
            wait_port(nginx_port)
            results.append(wrk("nginx reverse proxy", f"http://127.0.0.1:{nginx_port}/api/status",
                               args.seconds, args.connections, load))
        finally:
            stop(nginx)

    env = {"BENCH_UPSTREAM": f"http://127.0.0.1:{upstream_port}"}
    for name, target in (("bare Starlette + httpx", "bench.bare_httpx:app"),
                         ("bare ASGI + aiohttp", "bench.bare_aiohttp:app"),
                         ("bare ASGI + gateway.http11", "bench.bare_http11:app")):
        port = free_port()
        proc = uvicorn(target, port, env)
        try:
            wait_port(port)
            results.append(wrk(name, f"http://127.0.0.1:{port}/api/status", args.seconds, args.connections, load))
        finally:
            stop(proc)

    gw_port = free_port()
    cfg = _gateway_config(work, gw_port, upstream_port)
    gw_env = {"PORTAL_GATEWAY_CONFIG": str(cfg)}
    if args.access_log:
        gw_env["PORTAL_GATEWAY_SERVER__ACCESS_LOG"] = "true"
    gateway = uvicorn("gateway.app:create_app", gw_port, gw_env, factory=True)
    try:
        try:
            wait_port(gw_port, 60)
        except RuntimeError:
            err = server_log(gateway)
            raise RuntimeError(f"the gateway did not start:\n{err}") from None
        results.append(wrk("gateway, public route", f"http://127.0.0.1:{gw_port}/api/status",
                           args.seconds, args.connections, load))
    finally:
        stop(gateway)

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
    summary = (
        f"Measured {_stamp()} on {_machine()}; wrk -t2 -c{args.connections} -d{args.seconds}s, one worker each.\n"
        f"The gateway on a public route reaches {gw.rps / fastest_bare.rps:.0%} of the fastest bare Python "
        f"proxy, {fastest_bare.name} ({verdict} the ≥ 90 % target)."
    )
    return f"{summary}\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="duration of each measurement")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up before each measurement (s)")
    ap.add_argument("--connections", type=int, default=32, help="connections of the public-route table")
    ap.add_argument("--quick", action="store_true", help="3 s per measurement, 1 s warm-up")
    ap.add_argument("--sessions", type=int, default=2000, help="distinct sessions of the cold mix")
    ap.add_argument("--rounds", type=int, default=1,
                    help="full path: measure every row this many times, interleaved; medians reported")
    ap.add_argument("--no-baselines", action="store_true", help="skip the public-route table")
    ap.add_argument("--no-full-path", action="store_true", help="skip the full-path table")
    ap.add_argument("--soak", action="store_true", help="only the memory soak")
    ap.add_argument("--soak-requests", type=int, default=200_000)
    ap.add_argument("--soak-sessions", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true", help="py-spy the full path (embedded, c=32)")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--access-log", action="store_true", help="gateway with its access log on (to /dev/null)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 3, 1
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    opts = scenarios.Options(args.seconds, args.warmup, args.sessions, args.profile, max(1, args.rounds))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "var").mkdir()
        # Every server on a port free right now: a leftover process on a fixed
        # port would silently be measured instead.
        upstream_port = free_port()
        upstream = uvicorn("bench.upstream:app", upstream_port)
        try:
            wait_port(upstream_port)
            if args.soak:
                print(f"soak: {args.soak_requests:,} full-path requests over {args.soak_sessions:,} sessions")
                lines = scenarios.soak(opts, work, upstream_port, requests=args.soak_requests,
                                       sessions=args.soak_sessions)
                text = f"Measured {_stamp()} on {_machine()}; wrk -t2 -c32, one worker, embedded default.\n\n"
                text += "\n".join(lines)
                print(text)
                if not args.no_write:
                    _write_block("SOAK-TABLE", text)
                return 0
            if not args.no_baselines:
                print("public route (baselines) ...", flush=True)
                text = _baselines(args, work, upstream_port)
                print(text)
                if not args.no_write:
                    _write_block("BENCH-TABLE", text)
            if not args.no_full_path:
                print("full path ...", flush=True)
                rows = scenarios.measure(opts, work, upstream_port)
                rounds = f", median of {opts.rounds} interleaved rounds" if opts.rounds > 1 else ""
                text = (f"Measured {_stamp()} on {_machine()}; wrk -t2 (-t1 at c=1) -d{args.seconds}s{rounds}, "
                        f"one worker unless stated.\n\n" + scenarios.table(rows))
                print(text)
                if not args.no_write:
                    _write_block("FULLPATH-TABLE", text)
        except RuntimeError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            stop(upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
