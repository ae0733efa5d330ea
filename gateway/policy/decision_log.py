"""One JSON record per decision, to stdout, a file, or nowhere.

Fields: decision_id, time, request_id, subject, access_level, action,
resource_type, resource_id, outcome, reason, policy_revision, latency_us.
A shadow policy's disagreement (gateway/policy/shadow.py) is a record of its own,
written after the decision's: the same decision_id, request and active outcome, plus
shadow_outcome, shadow_reason and shadow_revision (fields only such records carry).
Only ids: never secrets, names, login names or request bodies. The stdout sink
keeps the stream it was built with, so redirecting sys.stdout elsewhere (tests,
oso's load messages) never swallows or mixes records.

Rotation of a file target: at most once a second (on the next record) the writer compares
the path's device and inode with those of the file it has open; when the path names another
file, or none, it opens the path again (creating it). So logrotate `create` (rename, then a
new file) works: records go to the rotated file for at most about a second, then to the new
one, and none is lost. `copytruncate` works too: the file is opened for appending (O_APPEND),
so after the truncation records start again at offset 0 (what is written between the copy
and the truncation is lost, as with any copytruncate).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

__all__ = ["FIELDS", "SHADOW_FIELDS", "DecisionLog"]

FIELDS = (
    "decision_id",
    "time",
    "request_id",
    "subject",
    "access_level",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "policy_revision",
    "latency_us",
)
#: Written only on shadow-disagreement records.
SHADOW_FIELDS = ("shadow_outcome", "shadow_reason", "shadow_revision")


class DecisionLog:
    """target: "stdout", "off" (or ""), or a file path (appended, line-buffered)."""

    def __init__(
        self,
        target: str = "stdout",
        *,
        clock: Callable[[], float],
        reopen_check: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.clock = clock
        #: Seconds between two checks whether the file was rotated away (see the module docstring).
        self.reopen_check = reopen_check
        self._monotonic = monotonic
        self._checked_at = monotonic()
        self._lock = threading.Lock()
        self._stream: IO[str] | None
        self._path: Path | None = None
        self._owned = False
        if target in ("off", ""):
            self._stream = None
        elif target == "stdout":
            self._stream = sys.stdout
        else:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = path.open("a", encoding="utf-8", buffering=1)
            self._path = path
            self._owned = True

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def record(self, **fields: Any) -> None:
        """Write one record; unknown fields are dropped (only the documented ids are logged)."""
        if not self.enabled:
            return
        rec: dict[str, Any] = {k: fields.get(k) for k in FIELDS}
        for k in SHADOW_FIELDS:
            if fields.get(k) is not None:
                rec[k] = fields[k]
        if rec["time"] is None:
            rec["time"] = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="microseconds")
        line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            stream = self._stream
            if stream is None:
                return
            if self._owned and self._monotonic() - self._checked_at >= self.reopen_check:
                stream = self._reopen_if_rotated(stream)
            try:
                stream.write(line)
                if not self._owned:
                    stream.flush()
            except (OSError, ValueError):
                pass  # a full disk or closed stream must not turn decisions into errors

    def _reopen_if_rotated(self, stream: IO[str]) -> IO[str]:
        """Under the lock: the stream to write to, opened again if the path names another file now."""
        self._checked_at = self._monotonic()
        assert self._path is not None
        try:
            st = os.stat(self._path)
            cur = os.fstat(stream.fileno())
            if (st.st_dev, st.st_ino) == (cur.st_dev, cur.st_ino):
                return stream
        except FileNotFoundError:
            pass  # moved away, no new file yet: create it
        except (OSError, ValueError):
            return stream  # cannot tell: keep writing where we are
        try:
            new = self._path.open("a", encoding="utf-8", buffering=1)
        except OSError:
            return stream  # e.g. the directory is not writable: the old file is better than nothing
        self._stream = new
        try:
            stream.close()
        except OSError:
            pass
        return new

    def close(self) -> None:
        with self._lock:
            if self._owned and self._stream is not None:
                self._stream.close()
            self._stream = None
