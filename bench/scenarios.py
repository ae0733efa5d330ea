"""The full path measured beside the bare forwarder: Anna's session, her line's usage.

Every row of the table is one wrk run of the same run of `make bench`; every ratio compares
rows of that run only. Rows:

- the bare ASGI forwarder over ``gateway.http11`` on the same URL with the same header, at
  c=1, c=8 and c=32, and with 2 workers at c=32 (the denominators);
- the full path, embedded default (memory store, SQLite): c=1, c=8, c=32;
- the cold mix: a wrk Lua script over many sessions, each asking for its own line;
- ``[assertion] binding = "session"`` on the embedded default;
- the full path on Redis + PostgreSQL, one worker at c=1, c=8, c=32 and two workers at c=32.

`soak` is the memory check: RSS of one worker over many full-path requests spread over
many sessions, sampled between wrk runs.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from bench.fullpath import (
    POSTGRES_ADMIN,
    REDIS_HOST,
    REDIS_PORT,
    Deployment,
    binding_section,
    gateway_config,
    probe,
    reachable,
)
from bench.harness import Load, Result
from bench.population import ANNA_LINE, Caller, Person, login_all, people, wrk_script

USAGE_PATH = f"/api/lines/{ANNA_LINE}/usage"


@dataclass(frozen=True)
class Options:
    seconds: int
    warmup: int
    sessions: int
    profile: bool
    rounds: int = 1


@dataclass
class Row:
    name: str
    result: Result | None
    compared_to: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""
    note: str = ""


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str
    hot: Caller
    crowd: list[Caller]


def _start_gateway(cfg: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    proc = harness.uvicorn("gateway.app:create_app", port, {"PORTAL_GATEWAY_CONFIG": str(cfg)},
                           factory=True, workers=workers)
    try:
        harness.wait_port(port, 180)
    except RuntimeError:
        harness.stop(proc)
        raise RuntimeError(f"the gateway ({cfg.name}) did not start:\n{harness.server_log(proc)}") from None
    return proc


@contextmanager
def gateway(dep: Deployment, upstream_port: int, crowd: list[Person], *, binding: str | None = None,
            section: str = "signing", workers: int = 1, expect: str = "request") -> Iterator[Running]:
    """A started gateway with everyone logged in and a probe passed; stopped on exit."""
    port = harness.free_port()
    cfg = gateway_config(dep, port, upstream_port, binding=binding, section=section)
    proc = _start_gateway(cfg, port, workers)
    try:
        url = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        hot, callers = asyncio.run(login_all(url, crowd))
        if crowd:
            print(f"  {len(callers) + 1:,} logins in {time.monotonic() - started:.1f} s", flush=True)
        seen = asyncio.run(probe(url, hot))
        if seen != expect:
            raise RuntimeError(f"{dep.name}: assertions are {seen}-bound, expected {expect}")
        yield Running(proc, url, hot, callers)
    finally:
        said = harness.server_log(proc, 2000).strip()
        if said:
            print(f"  the gateway ({cfg.name}) wrote to stderr (last lines):\n{said}", flush=True)
        harness.stop(proc)


def _bearer(caller: Caller) -> str:
    return f"Authorization: Bearer {caller.token}"


def _ratio(a: Result | None, b: Result | None) -> float | None:
    if a is None or b is None or b.rps == 0:
        return None
    return a.rps / b.rps


def _judge(value: float | None, target: float, *, at_least: bool = True, errors: int = 0) -> str:
    if value is None:
        return "—"
    if errors:
        return "INVALID (errors)"
    ok = value >= target if at_least else value <= target
    return "meets" if ok else "MISSES"


@dataclass(frozen=True)
class Plan:
    """One measurement: a row key, its label, the URL, the concurrency and the load."""

    key: str
    name: str
    url: str
    connections: int
    load: Load
    profile_pid: int | None = None


def _median(results: list[Result]) -> Result:
    """The median of each figure over the rounds (errors: the sum, so that none hides)."""
    first = results[0]
    return Result(first.name, statistics.median(r.rps for r in results),
                  statistics.median(r.p50_ms for r in results), statistics.median(r.p99_ms for r in results),
                  sum(r.errors for r in results), sum(r.requests for r in results), first.connections)


def measure(opts: Options, work: Path, upstream_port: int) -> list[Row]:
    """Start every target, run every full-path row (`opts.rounds` times, interleaved), judge.

    All servers are up at once, so that a round measures each row a few seconds after the
    previous one: on a shared machine the load drifts over minutes, and interleaved rounds
    with medians compare rows under the same conditions. A row that cannot run is kept
    with a note.
    """
    plans: list[Plan] = []
    notes: dict[str, str] = {}
    with ExitStack() as stack:
        _start_all(opts, work, upstream_port, stack, plans, notes)
        runs: dict[str, list[Result]] = collections.defaultdict(list)
        profile: list[str] = []
        for number in range(opts.rounds):
            if opts.rounds > 1:
                print(f"  round {number + 1} of {opts.rounds}", flush=True)
            for plan in plans:
                pid = plan.profile_pid if number == 0 else None
                with _profiled(pid, opts) as found:
                    r = harness.wrk(plan.name, plan.url, opts.seconds, plan.connections, plan.load)
                profile += found
                runs[plan.key].append(r)
                print(f"    {plan.name} c={plan.connections}: {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
                      f"p99 {r.p99_ms:.2f} ms, {r.errors} errors", flush=True)
        if profile:
            print("\n".join(profile), flush=True)
    res: dict[str, Result | None] = collections.defaultdict(lambda: None)
    res.update({key: _median(found) for key, found in runs.items()})
    return _rows(opts, res, notes)


def _start_all(opts: Options, work: Path, upstream_port: int, stack: ExitStack, plans: list[Plan],
               notes: dict[str, str]) -> None:
    """Start the bare forwarders and every gateway deployment; `plans` gets their rows."""
    upstream = {"BENCH_UPSTREAM": f"http://127.0.0.1:{upstream_port}"}
    # Denominators: the bare forwarder on the same URL, with an Authorization header too.
    placeholder = Load(opts.seconds, opts.warmup, header="Authorization: Bearer pgs_not-checked-by-the-bare-forwarder")
    for workers in (1, 2):
        port = harness.free_port()
        proc = harness.uvicorn("bench.bare_http11:app", port, upstream, workers=workers)
        stack.callback(harness.stop, proc)
        harness.wait_port(port)
        for c in (1, 8, 32) if workers == 1 else (32,):
            plans.append(Plan(f"bare{workers}-c{c}", f"bare forwarder, {workers} worker{'s' * (workers > 1)}",
                              f"http://127.0.0.1:{port}{USAGE_PATH}", c, placeholder))

    crowd = people(opts.sessions)
    embedded = Deployment("embedded", shared=False, work=work)
    print(f"  seeding {len(crowd):,} people (directory + accounts) and logging them in ...", flush=True)
    asyncio.run(embedded.open(crowd))
    gw = stack.enter_context(gateway(embedded, upstream_port, crowd))
    hot = Load(opts.seconds, opts.warmup, header=_bearer(gw.hot))
    for c in (1, 8, 32):
        plans.append(Plan(f"emb-c{c}", "full path, embedded", gw.url + USAGE_PATH, c, hot,
                          profile_pid=gw.proc.pid if c == 32 else None))
    script = wrk_script(gw.crowd, work / "cold-mix.lua")
    # No warm-up: the first pass over the sessions is the cold part of the mix.
    plans.append(Plan("cold-c32", f"cold mix, {len(gw.crowd):,} sessions", gw.url + USAGE_PATH, 32,
                      Load(opts.seconds, 0, script=script)))

    section, problem = binding_section(work, upstream_port)
    if section is not None:
        bound = Deployment("session-bound", shared=False, work=work)
        asyncio.run(bound.open([]))
        try:
            sgw = stack.enter_context(gateway(bound, upstream_port, [], binding="session", section=section,
                                              expect="session"))
            plans.append(Plan("sess-c32", "full path, binding = session", sgw.url + USAGE_PATH, 32,
                              Load(opts.seconds, opts.warmup, header=_bearer(sgw.hot))))
        except RuntimeError as exc:
            notes["sess"] = f"not measured: {exc}"
    else:
        notes["sess"] = f"not measured: this gateway takes no binding setting yet ({problem})"

    if not reachable(REDIS_HOST, REDIS_PORT) or not reachable("127.0.0.1", 5432):
        notes["pg"] = f"not measured: Redis {REDIS_HOST}:{REDIS_PORT} or PostgreSQL ({POSTGRES_ADMIN}) not reachable"
    else:
        shared = Deployment("redis-pg", shared=True, work=work)
        stack.callback(lambda: asyncio.run(shared.close()))
        asyncio.run(shared.open([]))
        for workers in (1, 2):
            pgw = stack.enter_context(gateway(shared, upstream_port, [], workers=workers))
            load = Load(opts.seconds, opts.warmup, header=_bearer(pgw.hot))
            for c in (1, 8, 32) if workers == 1 else (32,):
                plans.append(Plan(f"pg{workers}-c{c}", f"full path, Redis + PostgreSQL, {workers} worker"
                                  f"{'s' * (workers > 1)}", pgw.url + USAGE_PATH, c, load))
    for note in notes.values():
        print(f"  note: {note}", flush=True)


def _rows(opts: Options, res: dict[str, Result | None], notes: dict[str, str]) -> list[Row]:
    rows: dict[str, Row] = {}
    session_note = notes.get("sess", "")
    shared_note = notes.get("pg", "")

    def row(key: str, base: str, name: str | None = None, **kw: str) -> Row:
        r = res[key]
        ratio = _ratio(r, res[base])
        made = Row(name or (r.name if r else key), r, **kw)
        if ratio is not None and not made.ratio:
            made.ratio = f"{ratio:.2f}"
        rows[key] = made
        return made

    def errors(*keys: str) -> int:
        return sum(r.errors for r in (res[k] for k in keys) if r is not None)

    bare1 = "bare1-c32"
    out: list[Row] = []
    out.append(row("bare1-c1", "bare1-c1", compared_to="—", note="c=1 latency"))
    out.append(row("bare1-c8", "bare1-c8", note="c=8 p99"))
    out.append(row(bare1, bare1))
    out.append(row("bare2-c32", bare1, note="2 workers vs 1"))

    emb1 = row("emb-c1", "bare1-c1")
    lat = _overhead(res["emb-c1"], res["bare1-c1"], "p50_ms")
    emb1.note = f"c=1: p50 {lat:+.2f} ms over the bare forwarder" if lat is not None else ""
    out.append(emb1)
    emb8 = row("emb-c8", "bare1-c8")
    p99 = _overhead(res["emb-c8"], res["bare1-c8"], "p99_ms")
    emb8.target = "p99 overhead ≤ 2 ms"
    emb8.verdict = _judge(p99, 2.0, at_least=False, errors=errors("emb-c8", "bare1-c8"))
    emb8.note = f"p99 {p99:+.2f} ms" if p99 is not None else ""
    out.append(emb8)
    emb = row("emb-c32", bare1, target="≥ 0.40")
    emb.verdict = _judge(_ratio(res["emb-c32"], res[bare1]), 0.40, errors=errors("emb-c32", bare1))
    out.append(emb)

    sess = row("sess-c32", bare1, name="full path, binding = session", target="≥ 0.65")
    sess.verdict = _judge(_ratio(res["sess-c32"], res[bare1]), 0.65, errors=errors("sess-c32", bare1))
    sess.note = session_note
    out.append(sess)

    cold = row("cold-c32", bare1, name=f"cold mix, {opts.sessions:,} sessions", target="≥ 0.50 of hot full path")
    cold_vs_hot = _ratio(res["cold-c32"], res["emb-c32"])
    cold.verdict = _judge(cold_vs_hot, 0.50, errors=errors("cold-c32", "emb-c32"))
    cold.note = f"{cold_vs_hot:.2f} of hot" if cold_vs_hot is not None else ""
    out.append(cold)

    for c, base in ((1, "bare1-c1"), (8, "bare1-c8")):
        r = row(f"pg1-c{c}", base, name="full path, Redis + PostgreSQL, 1 worker", note=shared_note)
        if c == 8:
            extra = _overhead(res["pg1-c8"], res["bare1-c8"], "p99_ms")
            r.note = r.note or (f"p99 {extra:+.2f} ms" if extra is not None else "")
        out.append(r)
    pg = row("pg1-c32", bare1, name="full path, Redis + PostgreSQL, 1 worker", target="≥ 0.80 of embedded",
             note=shared_note)
    pg_vs_emb = _ratio(res["pg1-c32"], res["emb-c32"])
    pg.verdict = _judge(pg_vs_emb, 0.80, errors=errors("pg1-c32", "emb-c32"))
    pg.note = pg.note or (f"{pg_vs_emb:.2f} of embedded" if pg_vs_emb is not None else "")
    out.append(pg)
    pg2 = row("pg2-c32", "bare2-c32", name="full path, Redis + PostgreSQL, 2 workers",
              target="≥ 1.4 x 1 worker", note=shared_note)
    scale = _ratio(res["pg2-c32"], res["pg1-c32"])
    pg2.verdict = _judge(scale, 1.4, errors=errors("pg2-c32", "pg1-c32"))
    pg2.note = pg2.note or (f"{scale:.2f} x 1 worker" if scale is not None else "")
    out.append(pg2)
    return out


def _overhead(a: Result | None, b: Result | None, attr: str) -> float | None:
    if a is None or b is None:
        return None
    return float(getattr(a, attr)) - float(getattr(b, attr))


def table(rows: list[Row]) -> str:
    lines = ["| measurement | c | req/s | p50 ms | p99 ms | errors | vs bare forwarder (same c, workers) "
             "| target | verdict | note |", "|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        m = r.result
        if m is None:
            lines.append(f"| {r.name} | | — | — | — | — | — | {r.target} | — | {r.note} |")
            continue
        lines.append(f"| {r.name} | {m.connections} | {m.rps:,.0f} | {m.p50_ms:.2f} | {m.p99_ms:.2f} | "
                     f"{m.errors} | {r.ratio} | {r.target} | {r.verdict} | {r.note} |")
    return "\n".join(lines)


@contextmanager
def _profiled(pid: int | None, opts: Options) -> Iterator[list[str]]:
    """With --profile: py-spy samples `pid` while the block runs; the summary lands in the list."""
    summary: list[str] = []
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if pid is None or not opts.profile or not Path(spy).exists():
        if opts.profile and pid is not None:
            summary.append("  profile: py-spy not found (pip install py-spy)")
        yield summary
        return
    out = Path(f"/tmp/bench-profile-{pid}.txt")
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(opts.seconds + opts.warmup),
                             "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=errors)
    try:
        yield summary
    finally:
        try:
            proc.wait(opts.seconds + opts.warmup + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if out.exists():
            summary.extend(summarise_profile(out.read_text()))
            out.unlink()
        else:
            errors.seek(0)
            err = errors.read().decode(errors="replace")
            summary.append(f"  profile: py-spy recorded nothing ({err.strip()[:300]})")
        errors.close()


#: Library frames worth naming in the inclusive list (the rest is the server's and asyncio's frame).
_LIBRARIES = ("joserfc", "cryptography", "oso", "polar", "sqlalchemy", "aiosqlite", "asyncpg", "redis",
              "httptools", "json")


def summarise_profile(collapsed: str, top: int = 15) -> list[str]:
    """Top frames of a py-spy collapsed-stack file, by own samples and by samples below them."""
    own: collections.Counter[str] = collections.Counter()
    below: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        own[frames[-1][0]] += count
        for name in {name for name, interesting in frames if interesting}:
            below[name] += count
    if not total:
        return ["  profile: no samples"]
    text = [f"  profile of the full path (embedded, c=32): {total:,} samples", "  own time:"]
    text += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    text.append("  including callees (gateway and selected library frames):")
    text += [f"    {n / total:6.1%}  {f}" for f, n in below.most_common(top)]
    return text


def _frame(frame: str) -> tuple[str, bool]:
    """``func (path/to/module.py:12)`` -> (``func (module.py)``, whether it is a gateway/library frame)."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = file.split("/")
    in_gateway = "gateway" in parts[:-1]
    if in_gateway:
        short = "/".join(parts[parts.index("gateway") :])
    else:
        short = "/".join(parts[-2:])
    interesting = in_gateway or any(f"/{lib}/" in file or file.endswith(f"/{lib}.py") for lib in _LIBRARIES)
    return f"{name} ({short})", interesting


def soak(opts: Options, work: Path, upstream_port: int, *, requests: int, sessions: int) -> list[str]:
    """RSS of one gateway worker over `requests` full-path requests spread over `sessions`."""
    crowd = people(sessions)
    dep = Deployment("soak", shared=False, work=work)
    print(f"  seeding {sessions:,} people and logging them in ...", flush=True)
    asyncio.run(dep.open(crowd))
    lines: list[str] = []
    with gateway(dep, upstream_port, crowd) as gw:
        script = wrk_script(gw.crowd, work / "soak.lua")
        samples: list[tuple[int, int]] = [(0, _rss_kib(gw.proc.pid))]
        done = 0
        chunk = max(opts.seconds, 5)
        while done < requests:
            r = harness.wrk("soak", gw.url + USAGE_PATH, chunk, 32,
                            Load(chunk, 0, script=script, script_args=(str(done),)))
            if r.errors:
                raise RuntimeError(f"soak: {r.errors} errors in a chunk")
            done += r.requests
            samples.append((done, _rss_kib(gw.proc.pid)))
            print(f"  {done:>9,} requests  RSS {samples[-1][1] / 1024:7.1f} MiB", flush=True)
    lines.append("| requests | RSS MiB |")
    lines.append("|---:|---:|")
    lines += [f"| {n:,} | {kib / 1024:.1f} |" for n, kib in samples]
    lines.append("")
    lines.append(judge_flat(samples, warmup_requests=requests // 4))
    return lines


def judge_flat(samples: list[tuple[int, int]], *, warmup_requests: int, band: float = 0.05) -> str:
    """Flat: every sample after the warm-up within ±`band` of the first sample after it."""
    after = [kib for n, kib in samples if n >= warmup_requests]
    if len(after) < 2:
        return "RSS: too few samples after the warm-up to judge"
    base = after[0]
    worst = max(abs(kib - base) / base for kib in after)
    verdict = "flat" if worst <= band else "NOT flat"
    return (f"RSS after the warm-up ({warmup_requests:,} requests): {base / 1024:.1f} MiB, largest deviation "
            f"{worst:.1%} → {verdict} (target ±{band:.0%})")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no RSS for {pid}")
