"""The proxy path: route → authenticate → authorize → mutate → forward.

Stages are separate objects composed in `gateway/app.py`; this class only runs
them in order over the frozen values they hand on. Routing runs first so a
public route (the network status) costs no authentication at all and an
unknown path is a plain 404.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from gateway.assertion import AssertionSigner, identity_headers
from gateway.errors import AuthenticationFailed, MethodNotAllowed, NotFound, UpstreamError
from gateway.metrics import GatewayMetrics
from gateway.middleware.authenticate import AuthenticationStage, credentials_from_scope
from gateway.middleware.authorize import AuthorizationStage
from gateway.middleware.canonicalize import SCOPE_KEY, CanonicalRequest
from gateway.middleware.context import DECISION_KEY, PRINCIPAL_KEY, ROUTE_KEY, STATUS_KEY
from gateway.routes import Match, RouteTable
from gateway.upstream import UpstreamPool

__all__ = ["ProxyPipeline"]


class ProxyPipeline:
    def __init__(
        self,
        *,
        routes: RouteTable,
        authentication: AuthenticationStage,
        authorization: AuthorizationStage,
        signer: AssertionSigner,
        upstreams: UpstreamPool,
        metrics: GatewayMetrics,
    ) -> None:
        self.routes = routes
        self.authentication = authentication
        self.authorization = authorization
        self.signer = signer
        self.upstreams = upstreams
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: CanonicalRequest = scope[SCOPE_KEY]
        matched = self.routes.match(request.method, request.segments)
        if matched.match is Match.NONE:
            raise NotFound("route_not_found")
        if matched.match is Match.PARTIAL:
            raise MethodNotAllowed(detail=", ".join(sorted(matched.allowed_methods)))
        route = matched.route
        assert route is not None
        scope[ROUTE_KEY] = route
        extra: list[tuple[bytes, bytes]] = []
        response_headers = [(b"x-request-id", request.request_id.encode())]
        if not route.public:
            principal = await self.authentication.authenticate(credentials_from_scope(scope, request))
            if principal is None:
                raise AuthenticationFailed("login_required", "this portal action needs a login")
            scope[PRINCIPAL_KEY] = principal
            assert route.action is not None and route.resource is not None
            decision = await self.authorization.decide(
                principal, route.action, route.resource, matched.resource_id, request.request_id
            )
            scope[DECISION_KEY] = decision
            self.authorization.enforce(decision)
            parts = getattr(decision, "visible_parts", None)
            assertion = self.signer.sign(
                principal,
                audience=route.upstream,
                method=request.method,
                path=request.path,
                request_id=request.request_id,
                parts=parts,
            )
            extra = identity_headers(principal, assertion, parts)
            response_headers.append((b"x-decision-id", str(decision.decision_id).encode()))
        try:
            scope[STATUS_KEY] = await self.upstreams.forward(
                route.upstream, request, scope["headers"], extra, receive, send, response_headers
            )
        except UpstreamError as exc:
            kind = "timeout" if exc.status_code == 504 else exc.reason
            self.metrics.upstream_errors.labels(route.upstream, kind).inc()
            raise
