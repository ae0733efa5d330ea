"""The operations listener: readiness details and metrics, away from the client port.

Readiness details name the database, the policy error text and the state of every
dependency, and metrics show traffic by route and reason: useful to an operator, a map
for an attacker. Like Envoy's admin port and Pomerium's metrics address they are served
on their own listener (`[server] ops_host`/`ops_port`, loopback by default); the client
port keeps only the bare liveness answer `/_gateway/health`.

`OpsListener` is started by the serving process (`portal-gateway serve`, `demo`, the
uvicorn worker factory), never by `build_app` alone, so tests and embedders that build
many apps in one process do not fight over the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from gateway.components import ReadyCheck
from gateway.decision_page import DecisionHistory, decision_routes
from gateway.metrics import GatewayMetrics

__all__ = ["OpsListener", "build_ops_app", "health_route"]

log = logging.getLogger("gateway.ops")


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})


def health_route() -> BaseRoute:
    """Liveness: the process answers. Served on both listeners; says nothing else."""
    return Route("/_gateway/health", _health, methods=["GET"])


def build_ops_app(
    registry: CollectorRegistry,
    checks: Sequence[ReadyCheck],
    metrics: GatewayMetrics,
    extra_routes: Sequence[BaseRoute] = (),
    render: Callable[[], bytes] | None = None,
    policy_status: Callable[[], tuple[bool, str]] | None = None,
    shadow_status: Callable[[], tuple[bool, str]] | None = None,
    history: DecisionHistory | None = None,
) -> ASGIApp:
    """Health, readiness with details, and Prometheus metrics.

    `render` replaces the plain registry dump (several workers: their merged snapshots,
    gateway/metrics_workers.py).
    """
    exposition: Callable[[], bytes] = render if render is not None else (lambda: generate_latest(registry))

    async def ready(request: Request) -> Response:
        results: dict[str, dict[str, Any]] = {}
        status = "ready"
        for check in checks:
            try:
                name, ok, message = await asyncio.wait_for(check(), timeout=3.0)
            except Exception as exc:  # a check that cannot answer is a failed check
                name, ok, message = getattr(check, "__name__", "check"), False, type(exc).__name__
            results[name] = {"ok": ok is True, "message": message}
            if ok == "degraded":
                results[name]["degraded"] = True
                status = "degraded" if status == "ready" else status
            elif ok is not True:
                status = "not_ready"
            metrics.ready.labels(name).set(1 if ok is True else 0)
        return JSONResponse(
            {"status": status, "checks": results},
            status_code=503 if status == "not_ready" else 200,
            headers={"cache-control": "no-store"},
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            health_route(),
            Route("/_gateway/ready", ready, methods=["GET"]),
            Route("/_gateway/metrics", metrics_endpoint, methods=["GET"]),
            *decision_routes(exposition, policy_status, shadow_status, history),
            *extra_routes,
        ]
    )


class OpsListener:
    """Serves the operations app on its own socket inside the gateway's event loop.

    With several workers each binds the same port with SO_REUSEPORT, so a scrape reaches
    one worker; readiness is per worker, as a probe expects.
    """

    def __init__(self, app: ASGIApp, *, host: str, port: int, reuse_port: bool = False) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self._server: Any = None
        self._socket: socket.socket | None = None

    @property
    def bound_port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.setblocking(False)
        # log_config=None and log_level=None: a uvicorn.Config otherwise re-runs uvicorn's own
        # logging set-up, which would turn the process's JSON lines (gateway/logs.py) back into
        # uvicorn's plain format and raise its loggers to this listener's level.
        config = uvicorn.Config(
            self.app, lifespan="off", access_log=False, log_config=None, log_level=None,
            server_header=False, date_header=False,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        # startup/shutdown rather than serve(): serve() would take over the process's signal
        # handlers, which belong to the client listener's server.
        await server.startup(sockets=[sock])
        self._server, self._socket = server, sock
        log.info("operations listener on http://%s:%d", self.host, self.bound_port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown(sockets=[self._socket] if self._socket else None)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
