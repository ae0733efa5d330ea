"""Structured logs: one JSON object a line for the gateway's own log records.

The access log and the decision log write their own JSON lines; this formats
everything that goes through `logging` (lockouts, reloads, seeding, errors) the
same way, so one log pipeline can read all of it.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure_logging"]

#: uvicorn's ``color_message`` repeats the message with terminal colour codes.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


#: Loggers whose lines share the format: ours, the server's (uvicorn: run it with
#: ``log_config=None``) and the HTTP client's, so one log pipeline reads everything.
LOGGERS = ("gateway", "demo", "uvicorn", "uvicorn.error", "httpx")

#: The access log is the gateway's own (`[server] access_log`, with request id, route and
#: decision). uvicorn writes a line per request whenever its access logger has a handler,
#: which would double every line and cost a JSON encoding per request on the hot path.
SILENCED = ("uvicorn.access",)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the gateway's, the server's and the HTTP client's loggers (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name != "httpx" else max(logging.getLevelName(level), logging.WARNING))
        logger.propagate = False
    for name in SILENCED:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = False
