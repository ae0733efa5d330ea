"""A real gateway (uvicorn on loopback) in front of the misbehaving upstream."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.app import Components, build_app
from gateway.auth.base import Credentials
from gateway.errors import AuthenticationFailed
from gateway.policy.decision import Decision
from gateway.principal import Principal
from gateway.routes import build_table
from gateway.settings import load_settings
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import serve_misbehaving

ROUTES = [
    {"methods": ["GET", "POST", "PUT", "DELETE"], "path": "/echo", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/echo/{a}", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/echo/{a}/{b}", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/slow", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/hang", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/reset", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/garbage", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/huge", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/chunked", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/truncated", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/until-close", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/status/{code}", "public": True, "upstream": "bad"},
    {"methods": ["POST"], "path": "/upload", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/headers", "public": True, "upstream": "bad"},
    {"methods": ["GET"], "path": "/down", "public": True, "upstream": "down"},
    {
        "methods": ["GET", "POST"],
        "path": "/echo/lines/{msisdn}/usage",
        "action": "view_usage",
        "resource": "line",
        "param": "msisdn",
        "upstream": "bad",
    },
]


class TokenAuthenticator:
    """Test authenticator: 'Bearer good-<subject>' is that subject; other bearers are bad."""

    id = "test-token"

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        auth = credentials.authorization
        if not auth:
            return None
        if auth.startswith("Bearer good-"):
            return Principal(
                subject=auth[len("Bearer good-") :],
                access_level="full",
                auth_methods=frozenset({"password", "totp"}),
                role="customer",
                bound_customer="1000001",
            )
        raise AuthenticationFailed("invalid_token")


class ScriptedAuthorizer:
    """Allows msisdn 1..., not_found for 9..., step_up for 7..., deny otherwise."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def authorize(self, principal: Principal, action: str, resource_type: str,
                        resource_id: str | None, *, request_id: str) -> Any:
        self.calls.append((principal.subject, action, resource_type, resource_id))
        outcome = {"1": "allow", "9": "not_found", "7": "step_up"}.get((resource_id or "x")[0], "deny")
        return Decision(outcome=outcome, reason="test_reason" if outcome == "deny" else "",  # type: ignore[arg-type]
                        decision_id="dec-1", policy_revision="test")


@dataclass
class Gateway:
    url: str
    upstream_app: Any
    authorizer: ScriptedAuthorizer
    log: io.StringIO
    registry: CollectorRegistry


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with serve_misbehaving() as (upstream_url, upstream_app):
        settings = load_settings(
            None,
            environ={},
            overrides={
                "server.data_dir": str(tmp_path),
                "server.max_body_bytes": 1024 * 1024,
                "server.trusted_proxies": ["127.0.0.2", "10.0.0.0/8"],
                "upstreams.bad": {"url": upstream_url, "read_timeout_seconds": 1.0,
                                  "connect_timeout_seconds": 1.0},
                "upstreams.down": {"url": "http://127.0.0.1:9", "connect_timeout_seconds": 0.5},
            },
        )
        authorizer = ScriptedAuthorizer()
        registry = CollectorRegistry()
        log = io.StringIO()
        app = build_app(
            settings,
            components=Components(authenticators=[TokenAuthenticator()], authorizer=authorizer),
            routes=build_table(ROUTES, "test-routes", settings.upstreams),
            registry=registry,
            access_log_stream=log,
        )
        async with serve_asgi(app) as url:
            yield Gateway(url, upstream_app, authorizer, log, registry)
