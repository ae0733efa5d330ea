"""`portal-gateway decisions`: query the JSON decision log during an incident.

What a security engineer would otherwise write with `jq`: filter the records of
gateway/policy/decision_log.py by subject, outcome, reason, action, resource, route (resolved
through the route table to its action and resource type) and time range; print them as a
table or as the JSON lines themselves; count them (`--summary`; with `--shadow`, the shadow
policy's disagreements by active → shadow outcome and reason); or follow a live log
(`--follow`: the matching records so far, then each new one, like `tail -n +1 -F`).

Never a traceback:

- A line that is not a decision record is skipped and counted: not JSON, not a JSON object,
  invalid UTF-8, a truncated last line (a log cut by a full disk), or a record whose fields
  have the wrong type (`reason` a list, `time` a number, ...; the documented fields are
  strings or null, `latency_us` a number or null). The note on stderr gives the count and the
  first line number; in follow mode each skipped line is noted as it arrives.
- Output into a pipe that closes early (`| head`, quitting `less`) ends quietly with exit
  status 141 (128 + SIGPIPE), what `grep`, `cat` and `jq` give the shell in that case.
- Follow mode survives log rotation the way `tail -F` does: when the path names a new file
  (rename rotation, logrotate `create`) it reads the rest of the old file, then the new one
  from its start (and still reads what a writer adds to the old file for a few seconds);
  when the file shrinks below the position read (logrotate `copytruncate`) it reads it again
  from the start. Both are noted on stderr.
- Usage errors (exit 2): an `--outcome` that is not one of the outcomes (the valid values are
  listed), `--follow` with `--summary` (a summary counts a finished set of records; use
  `--summary --since 15m` instead), `--route` without a configuration to take the route table
  from (`--config` or $PORTAL_GATEWAY_CONFIG).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, BinaryIO, get_args

from gateway.policy.decision import Outcome
from gateway.policy.decision_log import FIELDS, SHADOW_FIELDS

__all__ = ["OUTCOMES", "DecisionFilter", "Follower", "command", "parse_when", "query", "run", "summarize"]

#: The outcomes a decision record can carry (gateway/policy/decision.py).
OUTCOMES: tuple[str, ...] = get_args(Outcome)
#: Exit status when stdout is a pipe that closed early: what a tool killed by SIGPIPE gives the shell.
EXIT_BROKEN_PIPE = 128 + 13
_PROG = "portal-gateway decisions"

_RELATIVE = re.compile(r"(\d+)\s*([smhd])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
#: Fields that are a string or null in a well-formed record.
_STRING_FIELDS = tuple(k for k in FIELDS if k != "latency_us") + SHADOW_FIELDS


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (naive = UTC) or a span back from now: `90s`, `15m`, `2h`, `1d`."""
    now = now or datetime.now(UTC)
    m = _RELATIVE.fullmatch(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a time: {text!r} (ISO 8601, e.g. 2026-12-01T10:00, or 15m / 2h / 1d)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DecisionFilter:
    subject: str | None = None
    outcome: str | None = None
    reason: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: From --route: the (action, resource_type) pairs of the routes of that name.
    routes: frozenset[tuple[str, str]] | None = None

    def matches(self, rec: dict[str, Any]) -> bool:
        for key in ("subject", "outcome", "reason", "action", "resource_type", "resource_id"):
            wanted = getattr(self, key)
            if wanted is not None and rec.get(key) != wanted:
                return False
        if self.routes is not None and (rec.get("action"), rec.get("resource_type")) not in self.routes:
            return False
        if self.since is not None or self.until is not None:
            when = _time_of(rec)
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        return True


def _time_of(rec: dict[str, Any]) -> datetime | None:
    raw = rec.get("time")
    if not isinstance(raw, str):
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class Skipped:
    """Lines that are not decision records: how many, and the first one's line number."""

    lines: int = 0
    first: int | None = None
    #: Called with the line number of each skipped line as it is met (follow mode).
    on_skip: Callable[[int], None] | None = field(default=None, repr=False)

    def add(self, lineno: int) -> None:
        self.lines += 1
        if self.first is None:
            self.first = lineno
        if self.on_skip is not None:
            self.on_skip(lineno)


def _is_record(rec: object) -> bool:
    if not isinstance(rec, dict):
        return False
    if not isinstance(rec.get("decision_id"), str) or not isinstance(rec.get("outcome"), str):
        return False
    if any(not isinstance(rec.get(k), (str, type(None))) for k in _STRING_FIELDS):
        return False
    latency = rec.get("latency_us")
    return latency is None or (isinstance(latency, (int, float)) and not isinstance(latency, bool))


def _records(
    lines: Iterable[str], skipped: Skipped, shadow: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            rec = json.loads(text)
        except (ValueError, RecursionError):
            skipped.add(lineno)
            continue
        if not _is_record(rec):
            skipped.add(lineno)
            continue
        if rec.get("shadow_outcome") is not None and not shadow:
            continue  # a shadow policy's disagreement, not a decision of its own
        yield text, rec


def query(
    lines: Iterable[str], flt: DecisionFilter, skipped: Skipped, *, shadow: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Matching decision records; with `shadow`, the shadow policy's disagreement records instead."""
    return ((text, rec) for text, rec in _records(lines, skipped, shadow) if flt.matches(rec)
            and (not shadow or rec.get("shadow_outcome") is not None))


def _s(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def render(rec: dict[str, Any]) -> str:
    resource = f"{_s(rec.get('resource_type'))}:{_s(rec.get('resource_id'))}"
    outcome = _s(rec.get("outcome"))
    if rec.get("shadow_outcome") is not None:
        outcome = f"{outcome}→{_s(rec.get('shadow_outcome'))}"
    return "  ".join((
        _s(rec.get("time")),
        f"{outcome:<11}",
        f"{_s(rec.get('reason')):<28}",
        f"{_s(rec.get('action')):<22}",
        f"{resource:<28}",
        _s(rec.get("subject")),
        _s(rec.get("decision_id")),
    ))


def _decision_keys(rec: dict[str, Any]) -> tuple[str, str | None, str, str | None]:
    """(outcome, denial reason, action and outcome, denied subject) of one decision."""
    outcome = str(rec.get("outcome"))
    denied = outcome != "allow"
    return (outcome, str(rec.get("reason")) if denied else None, f"{rec.get('action')} {outcome}",
            str(rec.get("subject")) if denied else None)


def _disagreement_keys(rec: dict[str, Any]) -> tuple[str, str | None, str, str | None]:
    """(active → shadow outcome, active → shadow reason, action and change, subject) of one disagreement."""
    change = f"{rec.get('outcome')} → {rec.get('shadow_outcome')}"
    return (change, f"{rec.get('reason')} → {rec.get('shadow_reason')}", f"{rec.get('action')} {change}",
            str(rec.get("subject")))


def summarize(records: Iterable[dict[str, Any]], *, top: int = 10, shadow: bool = False) -> str:
    """Counts of decisions; with `shadow`, of disagreements by active → shadow outcome and reason."""
    keys = _disagreement_keys if shadow else _decision_keys
    counters: tuple[Counter[str], ...] = (Counter(), Counter(), Counter(), Counter())
    total = 0
    for rec in records:
        total += 1
        for counter, key in zip(counters, keys(rec), strict=True):
            if key is not None:
                counter[key] += 1
    if shadow:
        titles = ("by active → shadow outcome", "by active → shadow reason", "by action", "subjects")
        head = f"{total} shadow disagreements"
    else:
        titles = ("by outcome", "denials by reason", "by action and outcome", "most denied subjects")
        head = f"{total} decisions"
    return _sections(head, top, zip(titles, counters, strict=True))


def _sections(head: str, top: int, sections: Iterable[tuple[str, Counter[str]]]) -> str:
    out = [head]
    for title, counter in sections:
        out.append(f"\n{title}:")
        out.extend(f"  {count:>8}  {key}" for key, count in counter.most_common(top))
    return "\n".join(out)


@dataclass
class _Open:
    stream: BinaryIO
    lineno: int = 0
    #: For a rotated-away file: until when it is still read (a writer may not have reopened yet).
    until: float = 0.0


class Follower:
    """The lines of a file, then the lines appended to it, across rotations (like `tail -n +1 -F`).

    `lineno` and `path` name the line last yielded, for notes about it.
    """

    def __init__(
        self,
        path: Path,
        stream: BinaryIO,
        *,
        poll: float = 0.25,
        grace: float = 5.0,
        stop: Callable[[], bool] = lambda: False,
        note: Callable[[str], None] = lambda _msg: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.poll = poll
        self.grace = grace
        self.stop = stop
        self.note = note
        self.clock = clock
        self._cur = _Open(stream)
        self._old: list[_Open] = []
        self.lineno = 0

    def close(self) -> None:
        for f in (self._cur, *self._old):
            f.stream.close()
        self._old = []

    def __iter__(self) -> Iterator[str]:
        while not self.stop():
            got = False
            for f in (*self._old, self._cur):
                for line in self._lines(f):
                    got = True
                    yield line
            if got:
                continue
            now = self.clock()
            for f in [f for f in self._old if f.until <= now]:
                f.stream.close()
                self._old.remove(f)
            if not self._check_rotation():
                time.sleep(self.poll)

    def _lines(self, f: _Open) -> Iterator[str]:
        while True:
            pos = f.stream.tell()
            line = f.stream.readline()
            if not line:
                return
            if not line.endswith(b"\n"):
                f.stream.seek(pos)  # a line still being written: read it whole next time
                return
            f.lineno += 1
            self.lineno = f.lineno
            yield line.decode("utf-8", errors="replace")

    def _check_rotation(self) -> bool:
        try:
            st = os.stat(self.path)
            cur = os.fstat(self._cur.stream.fileno())
        except OSError:
            return False  # moved away and not created again yet: keep reading the old file
        if (st.st_dev, st.st_ino) != (cur.st_dev, cur.st_ino):
            try:
                new = self.path.open("rb")
            except OSError:
                return False
            self._cur.until = self.clock() + self.grace
            self._old.append(self._cur)
            self._cur = _Open(new)
            self.note(f"{self.path} was rotated, following the new file")
            return True
        if st.st_size < self._cur.stream.tell():
            self._cur.stream.seek(0)
            self._cur.lineno = 0
            self.note(f"{self.path} was truncated, reading it from the start")
            return True
        return False


def _quiet_stdout(out: IO[str]) -> None:
    """After EPIPE: point the stream's descriptor at /dev/null so the flush at exit is silent too."""
    try:
        fd = out.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def run(
    path: Path,
    flt: DecisionFilter,
    *,
    summary: bool,
    as_json: bool,
    follow_mode: bool,
    shadow: bool = False,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    poll: float = 0.25,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if flt.outcome is not None and flt.outcome not in OUTCOMES:
        print(f"{_PROG}: --outcome {flt.outcome!r} is not an outcome; the outcomes are: {', '.join(OUTCOMES)}",
              file=err)
        return 2
    if follow_mode and summary:
        print(f"{_PROG}: --follow and --summary do not go together (a summary counts a finished set of "
              "records): use --summary with --since/--until, or --follow without --summary", file=err)
        return 2
    try:
        stream = path.open("rb")
    except OSError as exc:
        print(f"{_PROG}: cannot read {path}: {exc.strerror or exc}", file=err)
        return 2
    skipped = Skipped()
    try:
        if follow_mode:
            return _follow(path, stream, flt, as_json=as_json, shadow=shadow, out=out, err=err,
                           poll=poll, stop=stop)
        with stream:
            lines = (raw.decode("utf-8", errors="replace") for raw in stream)
            matched = query(lines, flt, skipped, shadow=shadow)
            if summary:
                print(summarize((rec for _, rec in matched), shadow=shadow), file=out)
            else:
                for text, rec in matched:
                    print(text if as_json else render(rec), file=out)
            out.flush()
    except BrokenPipeError:
        _quiet_stdout(out)
        return EXIT_BROKEN_PIPE
    if skipped.lines:
        print(f"{_PROG}: skipped {skipped.lines} line(s) that are not decision records "
              f"(the first: line {skipped.first})", file=err)
    return 0


def _follow(
    path: Path, stream: BinaryIO, flt: DecisionFilter, *, as_json: bool, shadow: bool, out: IO[str],
    err: IO[str], poll: float, stop: Callable[[], bool],
) -> int:
    def note(msg: str) -> None:
        print(f"{_PROG}: {msg}", file=err, flush=True)

    follower = Follower(path, stream, poll=poll, stop=stop, note=note)
    skipped = Skipped()
    skipped.on_skip = lambda _n: note(
        f"skipped line {follower.lineno} of {follower.path}: not a decision record ({skipped.lines} so far)")
    try:
        for text, rec in query(follower, flt, skipped, shadow=shadow):
            print(text if as_json else render(rec), file=out, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        follower.close()
    return 0


def command(args: argparse.Namespace) -> int:
    """`portal-gateway decisions` with the arguments gateway/cli.py parsed."""
    from gateway.settings import ENV_PREFIX, load_settings

    if args.route and args.config is None and not os.environ.get(ENV_PREFIX + "CONFIG"):
        print(f"{_PROG}: --route needs the route table of a configuration: give --config FILE "
              f"(or set {ENV_PREFIX}CONFIG); without one, filter with --action and --resource", file=sys.stderr)
        return 2
    settings = None
    if args.file is None or args.route:
        settings = load_settings(args.config)
    if args.file is not None:
        path = Path(args.file)
    else:
        assert settings is not None
        target = settings.policy.decision_log
        if target in ("stdout", "off", ""):
            print(f"{_PROG}: {settings.source}: policy.decision_log is {target!r}, not a file; "
                  "name the file (e.g. where your log shipper writes stdout)", file=sys.stderr)
            return 2
        path = settings.path(target)
    try:
        since = parse_when(args.since) if args.since else None
        until = parse_when(args.until) if args.until else None
    except ValueError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    routes = None
    if args.route:
        from gateway.routes import RouteTableError, load_routes

        assert settings is not None
        try:
            table = load_routes(settings.path(settings.routes.path), settings.upstreams)
        except RouteTableError as exc:
            print(f"{_PROG}: --route: the route table of {settings.source} does not load: {exc}", file=sys.stderr)
            return 2
        routes = frozenset(
            (r.action, r.resource) for r in table.routes if r.name == args.route and r.action and r.resource
        )
        if not routes:
            print(f"{_PROG}: no non-public route named {args.route!r} in {settings.routes.path}", file=sys.stderr)
            return 2
    resource_type, _, resource_id = (args.resource or "").partition(":")
    flt = DecisionFilter(
        subject=args.subject, outcome=args.outcome, reason=args.reason, action=args.action,
        resource_type=resource_type or None, resource_id=resource_id or None,
        since=since, until=until, routes=routes,
    )
    return run(path, flt, summary=args.summary, as_json=args.json, follow_mode=args.follow, shadow=args.shadow)
