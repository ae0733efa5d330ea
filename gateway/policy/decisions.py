"""`portal-gateway decisions`: query the JSON decision log during an incident.

What a security engineer would otherwise write with `jq`: filter the records of
gateway/policy/decision_log.py by subject, outcome, reason, action, resource, route (resolved
through the route table to its action and resource type) and time range; print them as a
table or as the JSON lines themselves; count them (`--summary`); or follow a live log
(`--follow`: the matching records so far, then each new one, like `tail -n +1 -f`). A line
that is not a decision record is skipped and counted, never a traceback: a log cut by a full
disk still answers.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

__all__ = ["DecisionFilter", "parse_when", "query", "summarize"]

_RELATIVE = re.compile(r"(\d+)\s*([smhd])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


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
    lines: int = 0


def _records(
    lines: Iterable[str], skipped: Skipped, shadow: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            rec = json.loads(text)
        except ValueError:
            skipped.lines += 1
            continue
        if not isinstance(rec, dict) or "decision_id" not in rec or "outcome" not in rec:
            skipped.lines += 1
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


def render(rec: dict[str, Any]) -> str:
    resource = f"{rec.get('resource_type') or '-'}:{rec.get('resource_id') or '-'}"
    return "  ".join(
        str(x)
        for x in (
            rec.get("time") or "-",
            f"{rec.get('outcome', '-'):<11}",
            f"{rec.get('reason') or '-':<28}",
            f"{rec.get('action') or '-':<22}",
            f"{resource:<28}",
            rec.get("subject") or "-",
            rec.get("decision_id") or "-",
        )
    )


def summarize(records: Iterable[dict[str, Any]], *, top: int = 10) -> str:
    by_outcome: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    by_subject: Counter[str] = Counter()
    total = 0
    for rec in records:
        total += 1
        outcome = str(rec.get("outcome"))
        by_outcome[outcome] += 1
        if outcome != "allow":
            by_reason[str(rec.get("reason"))] += 1
            by_subject[str(rec.get("subject"))] += 1
        by_action[f"{rec.get('action')} {outcome}"] += 1
    out = [f"{total} decisions"]
    for title, counter in (("by outcome", by_outcome), ("denials by reason", by_reason),
                           ("by action and outcome", by_action), ("most denied subjects", by_subject)):
        out.append(f"\n{title}:")
        out.extend(f"  {count:>8}  {key}" for key, count in counter.most_common(top))
    return "\n".join(out)


def follow(stream: IO[str], *, poll: float = 0.25, stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """Yield the lines of `stream`, then the lines appended to it, like `tail -n +1 -f`."""
    partial = ""
    while not stop():
        chunk = stream.readline()
        if not chunk:
            time.sleep(poll)
            continue
        partial += chunk
        if partial.endswith("\n"):
            yield partial
            partial = ""


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
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    skipped = Skipped()
    try:
        stream = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"portal-gateway decisions: cannot read {path}: {exc.strerror or exc}", file=err)
        return 2
    with stream:
        if follow_mode:
            try:
                for text, rec in query(follow(stream), flt, skipped, shadow=shadow):
                    print(text if as_json else render(rec), file=out, flush=True)
            except KeyboardInterrupt:
                return 0
            return 0
        matched = query(stream, flt, skipped, shadow=shadow)
        if summary:
            print(summarize(rec for _, rec in matched), file=out)
        else:
            for text, rec in matched:
                print(text if as_json else render(rec), file=out)
    if skipped.lines:
        print(f"portal-gateway decisions: skipped {skipped.lines} line(s) that are not decision records",
              file=err)
    return 0
