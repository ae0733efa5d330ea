"""One JSON record per decision, to stdout, a file, or nowhere.

Fields: decision_id, time, request_id, subject, access_level, action,
resource_type, resource_id, outcome, reason, policy_revision, latency_us.
A shadow policy's disagreement (gateway/policy/shadow.py) is a record of its own,
written after the decision's: the same decision_id, request and active outcome, plus
shadow_outcome, shadow_reason and shadow_revision (fields only such records carry).
Only ids: never secrets, names, login names or request bodies. The stdout sink
keeps the stream it was built with, so redirecting sys.stdout elsewhere (tests,
oso's load messages) never swallows or mixes records.
"""

from __future__ import annotations

import json
import sys
import threading
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

    def __init__(self, target: str = "stdout", *, clock: Callable[[], float]) -> None:
        self.target = target
        self.clock = clock
        self._lock = threading.Lock()
        self._stream: IO[str] | None
        self._owned = False
        if target in ("off", ""):
            self._stream = None
        elif target == "stdout":
            self._stream = sys.stdout
        else:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = path.open("a", encoding="utf-8", buffering=1)
            self._owned = True

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def record(self, **fields: Any) -> None:
        """Write one record; unknown fields are dropped (only the documented ids are logged)."""
        stream = self._stream
        if stream is None:
            return
        rec: dict[str, Any] = {k: fields.get(k) for k in FIELDS}
        for k in SHADOW_FIELDS:
            if fields.get(k) is not None:
                rec[k] = fields[k]
        if rec["time"] is None:
            rec["time"] = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="microseconds")
        line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            try:
                stream.write(line)
                if not self._owned:
                    stream.flush()
            except (OSError, ValueError):
                pass  # a full disk or closed stream must not turn decisions into errors

    def close(self) -> None:
        with self._lock:
            if self._owned and self._stream is not None:
                self._stream.close()
            self._stream = None
