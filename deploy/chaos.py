"""A soak and chaos run over the full path (`make soak`, not part of `make test`).

Many sessions (real logins through the gateway's API, bench/population.py) ask for their own
line — and one request in ten for somebody else's — from a few concurrent clients, while a
chaos script, at fixed points of the run:

* kills Redis (SIGKILL, as when its machine dies) and starts it again on the same port and
  append-only file (``--appendonly yes --appendfsync always``: a session written is on disk);
* restarts PostgreSQL (a cluster of the run's own, initdb + pg_ctl — never the shared one);
* replaces the policy with a broken one and reloads (SIGHUP), then puts the good one back;
* stalls the backend (SIGSTOP, then SIGCONT).

Every answer is checked: a 200 carries the assertion the gateway signed for the request (the
bench upstream echoes it), whose subject must be the session's own account; a foreign line
must never be 200. At the end every session asks once more: a 401 is a session lost.

    python -m deploy.chaos --requests 200000 --sessions 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.fullpath import Deployment, _claims, gateway_config
from bench.harness import PY, free_port, uvicorn
from bench.population import ANNA_LOGIN, Caller, Person, login_all, people, seed_database
from gateway.database import Database

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("redis", "postgres", "policy", "backend")
BROKEN_POLICY = "allow(actor, action, resource) if this is not polar;\n"

__all__ = ["FAULTS", "Report", "main", "run"]


class OwnRedis:
    """A redis-server of the run's own, persistent: every write is fsynced to its AOF."""

    def __init__(self, work: Path) -> None:
        self.dir = work / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed program, arguments we built
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # PING answers PONG only once the append-only file is loaded (LOADING before).
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class ChaosDeployment(Deployment):
    """bench's deployment on servers of the run's own (Redis and PostgreSQL it may restart)."""

    redis_port: int = 0
    pg_port: int = 0

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/postgres"

    def store_toml(self) -> str:
        return (f'[store]\nbackend = "redis"\nurl = "redis://127.0.0.1:{self.redis_port}/0"\n'
                f'key_prefix = "{self.key_prefix}"\n')

    async def open(self, crowd: list[Person]) -> None:
        db = Database(self.database_url)
        try:
            await seed_database(db, crowd, totp_key=self.totp_key)
        finally:
            await db.close()

    async def close(self) -> None:
        return None  # the servers and their data go with the work directory


@dataclass
class Fault:
    name: str
    started: float = 0.0
    restored: float = 0.0


@dataclass
class Answer:
    at: float
    status: str
    own: bool


@dataclass
class Report:
    requests: int
    sessions: int
    statuses: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    sessions_lost: int = 0
    rss_start_kib: int = 0
    rss_end_kib: int = 0
    recovery: dict[str, Recovery] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"requests {self.requests:,} over {self.sessions:,} sessions in {self.seconds:.0f} s "
               f"({self.requests / max(self.seconds, 0.001):.0f}/s)", "requests by status:"]
        out += [f"  {status:>12}  {count:>9,}" for status, count in sorted(self.statuses.items())]
        out.append(f"wrong answers: {len(self.wrong)}")
        out += [f"  {w}" for w in self.wrong[:10]]
        out.append(f"sessions lost: {self.sessions_lost}")
        out.append(f"gateway RSS: {self.rss_start_kib / 1024:.1f} MiB at start, "
                   f"{self.rss_end_kib / 1024:.1f} MiB at end")
        for name, r in self.recovery.items():
            out.append(f"fault {name:>8}: held {r.held:.1f} s; {r.failed:,} own-line requests not 200; "
                       f"{r.failures_after_restore:,} of them after the restore; first 200 {r.first_ok:.2f} s and "
                       f"the last failure {r.last_failure:.2f} s after the restore")
        return out


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (the workers, if any)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _wait_http(url: str, seconds: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {seconds:.0f} s")


@dataclass
class Progress:
    """Where the run is: the chaos script waits for a number of answers; the load for the chaos."""

    answers: list[Answer] = field(default_factory=list)
    marks: list[tuple[int, asyncio.Event]] = field(default_factory=list)
    chaos_done: asyncio.Event = field(default_factory=asyncio.Event)

    async def reached(self, count: int) -> None:
        if len(self.answers) >= count:
            return
        mark = asyncio.Event()
        self.marks.append((count, mark))
        await mark.wait()

    def add(self, answer: Answer) -> None:
        self.answers.append(answer)
        for count, mark in self.marks:
            if len(self.answers) >= count:
                mark.set()


async def _load(url: str, callers: list[Caller], subjects: list[str], total: int, clients: int,
                per_client: int, progress: Progress, report: Report) -> None:
    """`total` requests (and on until the chaos script is done) from `clients` connection pools
    of `per_client` concurrent requests each."""
    issued = 0
    rng = random.Random(2026)  # a load pattern, not a secret

    def next_request() -> tuple[int, str, bool] | None:
        nonlocal issued
        if issued >= total and progress.chaos_done.is_set():
            return None
        i = issued
        issued += 1
        who = i % len(callers)
        if rng.random() < 0.1:  # somebody else's line: the policy denies it
            other = (who + 1 + rng.randrange(len(callers) - 1)) % len(callers)
            return who, callers[other].path, False
        return who, callers[who].path, True

    async def worker(client: httpx.AsyncClient) -> None:
        while (job := next_request()) is not None:
            who, path, own = job
            try:
                r = await client.get(path + "?bench-echo", headers={"authorization": f"Bearer {callers[who].token}"})
            except httpx.HTTPError as exc:
                progress.add(Answer(time.monotonic(), type(exc).__name__, own))
                continue
            progress.add(Answer(time.monotonic(), str(r.status_code), own))
            if r.status_code != 200:
                continue
            if not own:
                report.wrong.append(f"{path} answered 200 for the session of {subjects[who]} (a foreign line)")
                continue
            try:
                subject = _claims(r.json()["assertion"]).get("sub")
            except (ValueError, KeyError, IndexError) as exc:
                report.wrong.append(f"{path}: a 200 without a readable assertion ({type(exc).__name__})")
                continue
            if subject != subjects[who]:
                report.wrong.append(f"{path}: answered for {subject!r}, the session is {subjects[who]!r}")

    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    async with contextlib.AsyncExitStack() as stack:
        pools = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=15, limits=limits))
                 for _ in range(clients)]
        await asyncio.gather(*(worker(pool) for pool in pools for _ in range(per_client)))


@dataclass(frozen=True)
class Recovery:
    """One fault's cost: seconds held, own-line failures until the next fault, and (seconds after
    the restore) the first 200 and the last failure."""

    held: float
    failed: int
    first_ok: float
    last_failure: float
    failures_after_restore: int = 0


def _recovery(answers: list[Answer], faults: list[Fault]) -> dict[str, Recovery]:
    out: dict[str, Recovery] = {}
    for k, fault in enumerate(faults):
        until = faults[k + 1].started if k + 1 < len(faults) else float("inf")
        window = [a for a in answers if a.own and fault.started <= a.at < until]
        failing = [a.at for a in window if a.status != "200"]
        ok = [a.at for a in window if a.status == "200" and a.at >= fault.restored]
        key = fault.name if fault.name not in out else f"{fault.name} #{k + 1}"
        out[key] = Recovery(
            held=fault.restored - fault.started, failed=len(failing),
            first_ok=max(0.0, min(ok, default=fault.restored) - fault.restored),
            last_failure=max(0.0, max(failing, default=fault.restored) - fault.restored),
            failures_after_restore=sum(1 for at in failing if at >= fault.restored))
    return out


async def run(requests: int, sessions: int, faults: tuple[str, ...], *, clients: int = 4, per_client: int = 8,
              hold: float = 2.0, work: Path | None = None, say: Callable[[str], None] = print) -> Report:
    from deploy.postgres import OwnPostgres

    own_work = work is None
    # Outside any root-only directory: initdb runs as the postgres user when we are root.
    work = work or Path(tempfile.mkdtemp(prefix="pgw-chaos-"))
    work.chmod(0o755)
    report = Report(requests, sessions)
    redis, pg = OwnRedis(work), OwnPostgres(work)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        say(f"starting Redis (appendonly, fsync always), PostgreSQL and the upstream in {work}")
        redis.start()
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        crowd = people(sessions - 1)  # plus Anna
        dep = ChaosDeployment("chaos", shared=True, work=work, redis_port=redis.port, pg_port=pg.port)
        await dep.open(crowd)
        upstream_port, port, ops_port = free_port(), free_port(), free_port()
        upstream = uvicorn("bench.upstream:app", upstream_port)
        procs.append(upstream)
        policy = work / "portal.polar"
        good = (ROOT / "policies" / "portal.polar").read_text(encoding="utf-8")
        policy.write_text(good, encoding="utf-8")
        cfg = gateway_config(dep, port, upstream_port)
        cfg.write_text(cfg.read_text().replace(f"{ROOT}/policies/portal.polar", str(policy)))
        gateway = _start_gateway(cfg, port, ops_port, work / "gateway.log")
        procs.append(gateway)
        ready = f"http://127.0.0.1:{ops_port}/_gateway/ready"
        await asyncio.to_thread(_wait_http, ready, 90, gateway)
        url = f"http://127.0.0.1:{port}"
        say(f"logging in {sessions:,} sessions")
        anna, people_callers = await login_all(url, crowd)
        callers = [anna, *people_callers]
        ids = await _account_ids(dep.database_url)
        subjects = [ids[ANNA_LOGIN], *(ids[p.login] for p in crowd)]
        report.rss_start_kib = rss_kib(gateway.pid)

        progress = Progress()
        answers = progress.answers
        done: list[Fault] = []

        async def restore_policy() -> None:
            policy.write_text(good, encoding="utf-8")
            gateway.send_signal(signal.SIGHUP)
            # Ready again once the good policy is loaded (the broken one made it not ready).
            await asyncio.to_thread(_wait_http, ready, 30, gateway)

        async def inject(name: str) -> None:
            fault = Fault(name, started=time.monotonic())
            say(f"  fault: {name} (after {len(answers):,} requests)")
            if name == "redis":
                redis.kill()
                await asyncio.sleep(hold)
                fault.restored = time.monotonic()
                await asyncio.to_thread(redis.start)
            elif name == "postgres":
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(hold)
                fault.restored = time.monotonic()
                await asyncio.to_thread(pg.start)
            elif name == "policy":
                policy.write_text(BROKEN_POLICY, encoding="utf-8")
                gateway.send_signal(signal.SIGHUP)
                await asyncio.sleep(hold)
                fault.restored = time.monotonic()
                await restore_policy()
            elif name == "backend":
                upstream.send_signal(signal.SIGSTOP)
                await asyncio.sleep(hold)
                fault.restored = time.monotonic()
                upstream.send_signal(signal.SIGCONT)
            done.append(fault)

        async def chaos() -> None:
            try:
                for k, name in enumerate(faults):
                    await progress.reached(requests * (k + 1) // (len(faults) + 1))
                    await inject(name)
            finally:  # a fault that could not be injected or undone still ends the run
                progress.chaos_done.set()

        say(f"running {requests:,} requests; faults: {', '.join(faults) or 'none'}")
        began = time.monotonic()
        chaos_task = asyncio.create_task(chaos())
        await _load(url, callers, subjects, requests, clients, per_client, progress, report)
        await chaos_task  # a fault placed near the end still completes
        report.seconds = time.monotonic() - began
        report.requests = len(answers)
        report.statuses = Counter(a.status for a in answers)
        report.recovery = _recovery(answers, done)
        report.rss_end_kib = rss_kib(gateway.pid)
        report.sessions_lost = await _lost(url, callers)
        return report
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.kill()
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            await asyncio.to_thread(pg.stop)
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def _start_gateway(cfg: Path, port: int, ops_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(  # noqa: S603 - our own CLI, arguments we built
        [str(Path(PY).parent / "portal-gateway"), "serve", "--config", str(cfg), "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PORTAL_GATEWAY_SERVER__OPS_PORT": str(ops_port)})


async def _account_ids(database_url: str) -> dict[str, str]:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return {r["login"]: r["id"] for r in await conn.fetch("SELECT login, id FROM auth_accounts")}
    finally:
        await conn.close()


async def _lost(url: str, callers: list[Caller]) -> int:
    """Sessions that no longer work after the run (401: the store forgot them)."""
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        async def one(c: Caller) -> bool:
            async with gate:
                r = await client.get(c.path, headers={"authorization": f"Bearer {c.token}"})
                return r.status_code == 401

        return sum(await asyncio.gather(*(one(c) for c in callers)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=4, help="connection pools (clients)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per client")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each fault lasts")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    args = parser.parse_args(argv)
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = [f for f in faults if f not in FAULTS]
    if unknown or args.sessions < 2 or args.requests < 1:
        parser.error(f"unknown fault {unknown}" if unknown else "--sessions >= 2 and --requests >= 1")
    report = asyncio.run(run(args.requests, args.sessions, faults, clients=args.clients,
                             per_client=args.concurrency, hold=args.hold))
    print("\n".join(report.lines()))
    return 1 if report.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
