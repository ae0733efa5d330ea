"""The decision stages, shared by every sink: route → authenticate → authorize → mutate.

`DecisionStages.admit` runs them in order over the frozen values they hand on
and returns an `Admission` (what the backend must be told), or raises one of
the error tree's answers. Two sinks consume it: `ProxyPipeline` forwards the
request itself, and forward-auth (`gateway/middleware/forward_auth.py`) hands
the same headers to an edge proxy. Neither re-implements a stage, so the
answer to a request cannot depend on which sink asked. Routing runs first so a
public route (the network status) costs no authentication at all and an
unknown path is a plain 404.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple

from starlette.types import Receive, Scope, Send

from gateway.assertion import AssertionSigner, identity_headers
from gateway.auth.origin import CrossSiteCheck
from gateway.errors import AuthenticationFailed, MethodNotAllowed, NotFound, UpstreamError
from gateway.metrics import GatewayMetrics
from gateway.middleware.authenticate import AuthenticationStage, credentials_from_scope
from gateway.middleware.authorize import AuthorizationStage
from gateway.middleware.canonicalize import SCOPE_KEY, CanonicalRequest, TrustedProxies
from gateway.middleware.context import DECISION_KEY, PRINCIPAL_KEY, ROUTE_KEY, STATUS_KEY
from gateway.middleware.credentials import CredentialFilter
from gateway.routes import Match, RouteTable
from gateway.tracing import Tracing, TracingSettings, parse_traceparent
from gateway.upstream import UpstreamPool

__all__ = ["Admission", "DecisionStages", "ProxyPipeline"]

log = logging.getLogger("gateway.pipeline")


class Admission(NamedTuple):
    """An allowed request: where it goes and what the backend is told."""

    upstream: str
    #: Identity headers and the signed assertion (empty on a public route).
    identity: list[tuple[bytes, bytes]]
    #: Headers for the client's answer (request id, decision id).
    response_headers: list[tuple[bytes, bytes]]


class DecisionStages:
    def __init__(
        self,
        *,
        routes: RouteTable,
        authentication: AuthenticationStage,
        authorization: AuthorizationStage,
        signer: AssertionSigner,
        tracing: Tracing | None = None,
    ) -> None:
        self.routes = routes
        self.authentication = authentication
        self.authorization = authorization
        self.signer = signer
        self.tracing = tracing or Tracing(TracingSettings())
        #: The one cross-site check of /api and /auth (gateway.auth.origin), for cookie requests.
        self.cross_site = CrossSiteCheck.of(authentication.authenticators)

    async def admit(self, scope: Scope, request: CanonicalRequest) -> Admission:
        """Decide `request`; record route, principal and decision in `scope` for the logs."""
        matched = self.routes.match(request.method, request.segments)
        if matched.match is Match.NONE:
            raise NotFound("route_not_found")
        if matched.match is Match.PARTIAL:
            raise MethodNotAllowed(detail=", ".join(sorted(matched.allowed_methods)))
        route = matched.route
        assert route is not None
        scope[ROUTE_KEY] = route
        response_headers = [(b"x-request-id", request.request_id.encode())]
        if route.public:
            return Admission(route.upstream, [], response_headers)
        credentials = credentials_from_scope(scope, request)
        if self.cross_site is not None:
            self.cross_site.check_request(
                request.method, scope["headers"], credentials.authorization, credentials.cookies
            )
        with self.tracing.span("authenticate"):
            principal = await self.authentication.authenticate(credentials)
        if principal is None:
            raise AuthenticationFailed("login_required", "this portal action needs a login")
        scope[PRINCIPAL_KEY] = principal
        assert route.action is not None and route.resource is not None
        with self.tracing.span("authorize"):
            decision = await self.authorization.decide(
                principal, route.action, route.resource, matched.resource_id, request.request_id
            )
            if self.tracing.enabled:
                self.tracing.annotate(**{"portal.action": route.action, "portal.outcome": str(decision.outcome),
                                         "portal.reason": str(decision.reason),
                                         "portal.decision_id": str(decision.decision_id)})
        scope[DECISION_KEY] = decision
        self.authorization.enforce(decision)
        parts = decision.visible_parts
        with self.tracing.span("sign"):
            assertion = self.signer.sign(
                principal,
                audience=route.upstream,
                method=request.method,
                path=request.path,
                request_id=request.request_id,
                parts=parts,
            )
        response_headers.append((b"x-decision-id", str(decision.decision_id).encode()))
        return Admission(route.upstream, identity_headers(principal, assertion, parts), response_headers)


class ProxyPipeline:
    """The gateway's own sink: decide, then stream the request to the upstream."""

    def __init__(
        self,
        *,
        stages: DecisionStages,
        upstreams: UpstreamPool,
        metrics: GatewayMetrics,
        trusted_peers: TrustedProxies | None = None,
        after_forward: Sequence[Callable[[Mapping[str, object], int], Awaitable[None]]] = (),
    ) -> None:
        #: Run once the backend answered (critical-action notices); a failing one is logged only.
        self.after_forward = tuple(after_forward)
        self.stages = stages
        self.upstreams = upstreams
        self.metrics = metrics
        #: Peers whose `traceparent` is continued (the same trust as X-Forwarded-For).
        self.trusted_peers = trusted_peers or TrustedProxies(())
        self.credentials = CredentialFilter.of(stages.authentication.authenticators)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: CanonicalRequest = scope[SCOPE_KEY]
        tracing = self.stages.tracing
        if not tracing.enabled:
            await self._serve(scope, receive, send, request)
            return
        parent = None
        if self.trusted_peers.trusts(scope["client"][0] if scope.get("client") else ""):
            raw = next((v for k, v in scope["headers"] if k == b"traceparent"), None)
            parent = parse_traceparent(raw) if raw is not None else None
        attributes = {"http.request.method": request.method, "url.path": request.path,
                      "portal.request_id": request.request_id}
        with tracing.request("gateway.request", parent, attributes):
            await self._serve(scope, receive, send, request)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, request: CanonicalRequest) -> None:
        admission = await self.stages.admit(scope, request)
        headers = self.credentials.headers_for(scope["headers"], scope[ROUTE_KEY])
        identity = admission.identity
        tracing = self.stages.tracing
        with tracing.span("forward"):
            if tracing.enabled:
                # The backend continues our trace, never one a client chose.
                headers = [h for h in headers if h[0] not in (b"traceparent", b"tracestate")]
                parent = tracing.traceparent()
                if parent is not None:
                    identity = [*identity, (b"traceparent", parent)]
            try:
                scope[STATUS_KEY] = await self.upstreams.forward(
                    admission.upstream, request, headers, identity, receive, send, admission.response_headers,
                )
            except UpstreamError as exc:
                kind = "timeout" if exc.status_code == 504 else exc.reason
                self.metrics.upstream_errors.labels(admission.upstream, kind).inc()
                raise
        for hook in self.after_forward:
            try:
                await hook(scope, int(scope[STATUS_KEY]))
            except Exception as exc:  # the answer is sent; a notice must not turn it into an error
                log.error("after-forward hook failed: %s", type(exc).__name__)
