"""Outermost middleware: request id, the one error mapping, access log, metrics.

Every answer leaves through here, so this is where a GatewayError raised by any
stage becomes a response (`errors.send_error`), where the request id is given
to the response, and where one JSON access-log line per request is written.
Unexpected exceptions become a generic 500 with the request id; the traceback
goes to the log, never to the client.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TextIO

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.middleware.canonicalize import REQUEST_ID_KEY, SCOPE_KEY
from gateway.middleware.errors import send_error
from gateway.policy.decision import Decision
from gateway.upstream import ClientGone

__all__ = ["AccessLog", "ContextMiddleware"]

ROUTE_KEY = "gateway.route"
PRINCIPAL_KEY = "gateway.principal"
DECISION_KEY = "gateway.decision"
#: The status sent to the client, recorded by whoever started the answer.
STATUS_KEY = "gateway.status"
#: The only shape of a client's X-Request-Id that is adopted (anything else gets a fresh
#: id): it goes into logs, the assertion and the backend's headers. Used with fullmatch:
#: ``$`` would also accept a trailing "\n".
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
log = logging.getLogger("gateway")


class AccessLog:
    """One JSON line per request on a stream (stdout by default)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def write(self, record: dict[str, Any]) -> None:
        if self.stream is not None:
            self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")


class _Internal(GatewayError):
    status_code = 500
    error = "internal"
    reason = "internal_error"


class ContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: GatewayMetrics,
        access_log: AccessLog,
        message_lookup: Callable[[str, str], str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.lookup = message_lookup
        self.clock = clock
        self._id_prefix = secrets.token_hex(6)
        self._id_counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id: str | None = None
        accept = b""
        accept_language = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                request_id = value.decode()
            elif name == b"accept":
                accept = value
            elif name == b"accept-language":
                accept_language = value
        if request_id is None:
            # Unique, not secret: a per-process random prefix and a counter is
            # enough and far cheaper than os.urandom on every request.
            request_id = f"{self._id_prefix}{next(self._id_counter):010x}"
        scope[REQUEST_ID_KEY] = request_id
        error: GatewayError | None = None
        try:
            await self.app(scope, receive, send)
        except ClientGone:
            self.metrics.client_gone.inc()
            scope[STATUS_KEY] = 499
        except GatewayError as exc:
            error = exc
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            error = _Internal()
        if error is not None:
            if scope.get(STATUS_KEY):
                log.warning("error after the answer started: %s", error.reason)
            else:
                decision: Decision | None = scope.get(DECISION_KEY)
                try:
                    scope[STATUS_KEY] = error.status_code
                    await send_error(
                        send,
                        error,
                        request_id=request_id,
                        accept=accept.decode("latin-1"),
                        accept_language=accept_language.decode("latin-1"),
                        lookup=self.lookup,
                        hint_url=decision.hint_url if decision is not None else None,
                        decision_id=decision.decision_id if decision is not None else None,
                        scope=scope,
                    )
                except OSError:
                    self.metrics.client_gone.inc()
                except Exception as exc:
                    # The server refused even the error answer (e.g. a head it had half
                    # taken): the request still gets its access line and metrics below.
                    log.error("the error answer could not be sent: %s", type(exc).__name__,
                              extra={"request_id": request_id})
                if error.status_code == 400:
                    self.metrics.rejected.labels(error.reason).inc()
        elapsed = time.perf_counter() - started
        route = scope.get(ROUTE_KEY)
        if route is not None:
            route_name, action = route.name, route.action or "public"
        else:
            # The control plane (/auth, /_gateway, /.well-known) is labelled by the endpoint's
            # path template Starlette matched: bounded, unlike the raw path.
            control = scope.get("route")
            template = getattr(control, "path", None)
            route_name, action = (template, "control") if isinstance(template, str) else ("unmatched", "-")
        status = scope.get(STATUS_KEY, 0)
        self.metrics.observe(route_name, action, status, elapsed)
        if self.access_log.stream is None:
            return
        canonical = scope.get(SCOPE_KEY)
        principal = scope.get(PRINCIPAL_KEY)
        decision = scope.get(DECISION_KEY)
        record: dict[str, Any] = {
            "ts": round(self.clock(), 3),
            "type": "access",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": canonical.path if canonical is not None else "<rejected>",
            "status": status,
            "route": route_name,
            "action": action,
            "duration_ms": round(elapsed * 1000, 3),
            "client_ip": canonical.client_ip if canonical is not None else None,
        }
        if principal is not None:
            record["subject"] = principal.subject
        if decision is not None:
            record["decision_id"] = decision.decision_id
            record["outcome"] = decision.outcome
        if error is not None:
            record["reason"] = error.reason
        self.access_log.write(record)
