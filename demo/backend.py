"""The demo portal backend as a Starlette app, and its command line.

    python -m demo.backend --host 127.0.0.1 --port 8081 \\
        --jwks-url http://127.0.0.1:8080/.well-known/jwks.json --audience portal

Every endpoint except `GET /api/status` demands a valid `X-Portal-Assertion` (see
`demo.assertion`); without one the answer is 401 `{"error": "invalid_assertion", ...}`, and 503
`{"error": "unavailable", ...}` when the gateway's JWKS cannot be fetched. Each `create_app()`
has its own state (`demo.state.PortalState`), so changes are visible to later requests of that
app only.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from demo.api import PortalApi, error_response
from demo.assertion import AssertionVerifier, InvalidAssertion, KeysUnavailable, raw_request_path
from demo.responses import ASSERTION_HEADER, SCOPE_KEY, ApiError, answer
from demo.state import PortalState
from demo.world import demo_world

__all__ = ["AssertionMiddleware", "create_app", "main"]

logger = logging.getLogger("demo.backend")

#: (method, path) pairs served without an assertion
PUBLIC_ENDPOINTS: frozenset[tuple[str, str]] = frozenset({("GET", "/api/status"), ("HEAD", "/api/status")})


class AssertionMiddleware:
    """Pure ASGI: verify the assertion before any handler runs; put the result into the scope."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: AssertionVerifier,
        public: frozenset[tuple[str, str]] = PUBLIC_ENDPOINTS,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        if (method, scope["path"]) in self.public:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            path = raw_request_path(scope)
            verified = await self.verifier.verify(
                request.headers.get(ASSERTION_HEADER), method=method, path=path
            )
        except InvalidAssertion as error:
            # The reason is logged, never the token.
            logger.info("assertion rejected: %s (%s %s)", error.detail, method, scope["path"])
            response: Response = answer(
                request,
                {"error": "invalid_assertion", "detail": error.detail},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="portal-backend", error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        except KeysUnavailable as error:
            logger.warning("cannot verify assertions: %s", error)
            response = answer(
                request,
                {"error": "unavailable", "detail": "the gateway's signing keys cannot be loaded"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
            await response(scope, receive, send)
            return
        scope[SCOPE_KEY] = verified
        await self.app(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    detail = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers or {})
    return answer(request, {"error": error, "detail": detail}, status_code=exc.status_code, headers=headers)


def create_app(
    *,
    jwks_url: str,
    audience: str = "portal",
    issuer: str = "portal-gateway",
    clock: Callable[[], float] = time.time,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
    assertion_binding: Literal["request", "session"] = "request",
) -> Starlette:
    """A fresh demo backend with its own state and its own JWKS cache.

    `jwks_transport` lets tests fetch the JWKS without a network (httpx transport);
    normally the keys come from `jwks_url` over the network.
    """
    verifier = AssertionVerifier(
        jwks_url=jwks_url, audience=audience, issuer=issuer, clock=clock, transport=jwks_transport,
        binding=assertion_binding,
    )
    api = PortalApi(PortalState(demo_world(), clock))
    app = Starlette(
        routes=api.routes(),
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.add_middleware(AssertionMiddleware, verifier=verifier)
    app.state.verifier = verifier
    app.state.portal = api.state
    return app


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m demo.backend", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--jwks-url", default="http://127.0.0.1:8080/.well-known/jwks.json")
    parser.add_argument("--audience", default="portal")
    parser.add_argument("--issuer", default="portal-gateway")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    args = parser.parse_args(argv)
    from gateway.logs import configure_logging

    # The same JSON lines as the gateway beside it (portal-gateway demo prints both).
    configure_logging(args.log_level.upper())
    app = create_app(jwks_url=args.jwks_url, audience=args.audience, issuer=args.issuer)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
