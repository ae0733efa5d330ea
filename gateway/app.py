"""The composition root: the only place that builds parts and wires them together.

    ContextMiddleware          request id, error mapping, access log, metrics
      CanonicalizeMiddleware   one canonical path or 400; spoofable headers removed
        GatewayApp             lifespan; /auth, /_gateway, /.well-known → control plane
                                         everything else → ProxyPipeline

Every other module receives what it needs as arguments; nothing is created at
import time. `create_app()` is the uvicorn factory (reads the configuration
named by PORTAL_GATEWAY_CONFIG); `build_app(settings)` is what tests call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.assertion import AssertionSigner
from gateway.components import Components, Hook, build_components
from gateway.decision_page import DecisionHistory
from gateway.errors import GatewayError
from gateway.keys import KeyStore
from gateway.metrics import GatewayMetrics
from gateway.metrics_workers import WorkerSnapshots
from gateway.middleware.authenticate import AuthenticationStage
from gateway.middleware.authorize import AuthorizationStage
from gateway.middleware.canonicalize import (
    REQUEST_ID_KEY,
    CanonicalizeMiddleware,
    TrustedProxies,
)
from gateway.middleware.context import STATUS_KEY, AccessLog, ContextMiddleware
from gateway.middleware.errors import send_error
from gateway.middleware.forward_auth import mount_forward_auth
from gateway.middleware.pipeline import DecisionStages, ProxyPipeline
from gateway.ops import OpsListener, build_ops_app, health_route
from gateway.policy.decision import Decision
from gateway.routes import RouteTable, load_routes
from gateway.settings import Settings, load_settings
from gateway.tracing import Tracing, TracingSettings
from gateway.upstream import UpstreamPool

__all__ = ["GatewayApp", "build_app", "create_app"]

log = logging.getLogger("gateway")

_CONTROL_PREFIXES = ("auth", "_gateway", ".well-known")


class _DenyAll:
    """Used only when no policy is configured: deny by default."""

    async def authorize(self, *args: Any, **kwargs: Any) -> Decision:
        return Decision(outcome="unavailable", reason="policy_unavailable", decision_id="-", policy_revision="-")


class _ErrorResponse(Response):
    """Lets control-plane handlers answer through the same error renderer."""

    def __init__(self, exc: GatewayError, request: Request, lookup: Any) -> None:
        super().__init__()
        self.exc = exc
        self.request = request
        self.lookup = lookup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(
            send,
            self.exc,
            request_id=scope.get(REQUEST_ID_KEY, "-"),
            accept=self.request.headers.get("accept", ""),
            accept_language=self.request.headers.get("accept-language", ""),
            lookup=self.lookup,
        )


class GatewayApp:
    """Dispatches by the first path segment and runs the lifespan."""

    def __init__(
        self,
        *,
        control: ASGIApp,
        pipeline: ASGIApp,
        startup: Sequence[Hook],
        shutdown: Sequence[Hook],
        reload: Sequence[Hook],
    ) -> None:
        self.control = control
        self.pipeline = pipeline
        self.startup = tuple(startup)
        self.shutdown = tuple(shutdown)
        self.reload_hooks = tuple(reload)

    async def reload(self) -> None:
        for hook in self.reload_hooks:
            try:
                await hook()
            except Exception:
                log.exception("reload hook failed")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            segments = scope["gateway.request"].segments
            if segments and segments[0] in _CONTROL_PREFIXES:
                await self.control(scope, receive, _recording(scope, send))
            else:
                await self.pipeline(scope, receive, send)
        elif kind == "websocket":
            await _refuse_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            for hook in self.startup:
                await hook()
        except Exception as exc:
            log.exception("startup failed")
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        for hook in self.shutdown:
            try:
                await hook()
            except Exception:
                log.exception("shutdown step failed")
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        await send({"type": "lifespan.shutdown.complete"})


def _recording(scope: Scope, send: Send) -> Send:
    """Wrap `send` for control-plane answers: record the status, add the request id."""
    request_id = scope.get(REQUEST_ID_KEY, "-").encode()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            scope[STATUS_KEY] = message["status"]
            headers = list(message.get("headers", ()))
            if not any(k == b"x-request-id" for k, _ in headers):
                headers.append((b"x-request-id", request_id))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket upgrades are not proxied (yet): say so clearly instead of hanging."""
    await receive()  # websocket.connect
    body = json.dumps(
        {
            "error": "not_implemented",
            "reason": "websocket_not_supported",
            "message": "WebSocket connections are not supported by the portal gateway.",
        }
    ).encode()
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 501,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": "websocket_not_supported"})


def _jwks_route(keys: KeyStore) -> BaseRoute:
    async def jwks(request: Request) -> Response:
        return JSONResponse(keys.jwks(), headers={"cache-control": "public, max-age=60"})

    return Route("/.well-known/jwks.json", jwks, methods=["GET"])


def build_app(
    settings: Settings,
    *,
    components: Components | None = None,
    routes: RouteTable | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    access_log_stream: Any = None,
    serve_ops: bool = False,
    worker_of_many: bool = False,
) -> ContextMiddleware:
    """Build the whole gateway from settings; tests inject components.

    The operations app (readiness details, metrics) is `app.ops`; `serve_ops` also opens
    its listener in the lifespan (the serving process asks for it, tests do not).
    `worker_of_many`: this app is one of several worker processes (uvicorn's factory), so
    the operations port is shared (SO_REUSEPORT) and metrics are summed across workers.
    """
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewayMetrics(registry)
    tracing = Tracing(settings.section(TracingSettings, "tracing"))
    if components is None:
        components = build_components(settings, registry=registry, clock=clock, tracing=tracing)
    routes = routes if routes is not None else load_routes(settings.path(settings.routes.path), settings.upstreams)
    keys = KeyStore(
        settings.path(settings.server.data_dir) / "keys",
        algorithm=settings.signing.algorithm,
        rotate_after_seconds=settings.signing.rotate_after_days * 86400,
        assertion_ttl_seconds=settings.signing.assertion_ttl_seconds,
        clock=clock,
    )
    signer = AssertionSigner.from_settings(keys, settings.signing, clock=clock)
    pool = UpstreamPool(settings.upstreams, max_body_bytes=settings.server.max_body_bytes, metrics=metrics)
    stages = DecisionStages(
        routes=routes,
        authentication=AuthenticationStage(components.authenticators),
        authorization=AuthorizationStage(components.authorizer or _DenyAll(), metrics),
        signer=signer,
        tracing=tracing,
    )
    pipeline = ProxyPipeline(
        stages=stages,
        upstreams=pool,
        metrics=metrics,
        trusted_peers=TrustedProxies(settings.server.trusted_proxies),
        after_forward=components.after_forward,
    )

    async def upstreams_ready() -> tuple[str, bool, str]:
        return "upstreams", True, f"{len(settings.upstreams)} configured"

    lookup = components.message_lookup

    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return _ErrorResponse(exc, request, lookup)

    control = Starlette(
        routes=[health_route(), _jwks_route(keys), *components.control_routes],
        exception_handlers={GatewayError: gateway_error},
    )

    async def start_keys() -> None:
        keys.load()

    ops_hooks: tuple[list[Hook], list[Hook]] = ([], [])
    render: Callable[[], bytes] | None = None
    several = worker_of_many or settings.server.workers > 1
    if serve_ops and several:
        snapshots = WorkerSnapshots(registry, settings.path(settings.server.data_dir) / "metrics")
        render = snapshots.merged
        ops_hooks[0].append(snapshots.start)
        ops_hooks[1].append(snapshots.stop)
    policy_status: Callable[[], tuple[bool, str]] | None = getattr(components.authorizer, "ready", None)
    shadow = getattr(components.authorizer, "shadow", None)
    shadow_status: Callable[[], tuple[bool, str]] | None = shadow.ready if shadow is not None else None
    history = DecisionHistory()
    ops = build_ops_app(registry, components.ready_checks, metrics, render=render, policy_status=policy_status,
                        shadow_status=shadow_status, history=history)
    if serve_ops:
        ops_hooks[0].append(history.start)
        ops_hooks[1].append(history.stop)
    if serve_ops and settings.server.ops_port:
        listener = OpsListener(
            ops, host=settings.server.ops_host, port=settings.server.ops_port,
            reuse_port=several,
        )
        ops_hooks[0].append(listener.start)
        ops_hooks[1].insert(0, listener.stop)
    app = GatewayApp(
        control=control,
        pipeline=pipeline,
        startup=[start_keys, pool.start, *components.on_startup, *ops_hooks[0]],
        shutdown=[*ops_hooks[1], *components.on_shutdown, pool.close, tracing.shutdown],
        reload=components.on_reload,
    )
    stream = access_log_stream
    if stream is None and settings.server.access_log:
        stream = sys.stdout
    canonical = CanonicalizeMiddleware(
        app,
        trusted_proxies=TrustedProxies(settings.server.trusted_proxies),
        max_path_bytes=settings.server.max_path_bytes,
    )
    # Forward-auth (docs/forward-auth.md): the same stages, the edge proxy forwards.
    edge = mount_forward_auth(
        canonical,
        enabled=settings.forward_auth.enabled,
        peers=settings.forward_auth.trusted_peers,
        trusted_proxies=settings.server.trusted_proxies,
        max_path_bytes=settings.server.max_path_bytes,
        stages=stages,
        metrics=metrics,
        lookup=lookup,
    )
    outer = ContextMiddleware(edge, metrics=metrics, access_log=AccessLog(stream), message_lookup=lookup)
    outer.gateway = app  # type: ignore[attr-defined]
    outer.ops = ops  # type: ignore[attr-defined]
    return outer


def create_app() -> ContextMiddleware:
    """uvicorn factory: configuration from PORTAL_GATEWAY_CONFIG (and the environment)."""
    from gateway.logs import configure_logging

    configure_logging()  # a worker process starts without the parent's logging set-up
    return build_app(load_settings(), serve_ops=True, worker_of_many=True)
