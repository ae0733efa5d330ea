"""Forward-auth: the gateway's decision for a request that an edge proxy carries itself.

nginx ``auth_request``, Caddy ``forward_auth``, Traefik ``ForwardAuth`` and Envoy
``ext_authz`` (HTTP service) ask before they forward. Each names the original
request its own way:

    nginx            GET /_gateway/authz     X-Original-Method, X-Original-URI
    Caddy, Traefik   GET /_gateway/authz     X-Forwarded-Method, X-Forwarded-Uri (+ X-Forwarded-Host)
    Envoy ext_authz  <method> /_gateway/authz/envoy<original path>?<query>

`ForwardAuthMiddleware` sits outside `CanonicalizeMiddleware`: it checks that
the peer is a configured edge proxy (the original-request headers are a claim
only such a peer may make), rewrites the ASGI scope into the original request,
and hands it to a `CanonicalizeMiddleware` around `ForwardAuthSink`. So the
claimed URI meets exactly the refusals the proxy path applies to a request
line, and `DecisionStages` (shared with `ProxyPipeline`) decides it; only the
sink differs: 200 with the identity headers and the assertion for the edge to
copy upstream, instead of forwarding.

Two conventions of one edge would be ambiguous (a client could add the other
one), so a request carrying more than one is refused. nginx passes only
2xx/401/403 of an ``auth_request`` on (anything else becomes its own 500) and
never the body, so for nginx a refusal is sent as 401/403 with the real answer
in ``X-Portal-Answer``; the documented config hands that to
`ANSWER_PATH`, which renders the very answer the proxy path would have sent
(same status, JSON/HTML body and headers) without deciding a second time.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import (
    AuthenticationFailed,
    BadRequest,
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    StepUpRequired,
    TooManyRequests,
)
from gateway.metrics import GatewayMetrics
from gateway.middleware.canonicalize import (
    REQUEST_ID_KEY,
    SCOPE_KEY,
    CanonicalizeMiddleware,
    CanonicalRequest,
    TrustedProxies,
)
from gateway.middleware.context import DECISION_KEY, ROUTE_KEY, STATUS_KEY
from gateway.middleware.credentials import CredentialFilter
from gateway.middleware.errors import send_error
from gateway.middleware.pipeline import DecisionStages
from gateway.policy.decision import Decision

__all__ = [
    "ANSWER_PATH",
    "AUTHZ_PATH",
    "ENVOY_PREFIX",
    "ForwardAuthMiddleware",
    "ForwardAuthSink",
    "OriginalRequest",
    "mount_forward_auth",
    "original_request",
]

AUTHZ_PATH = b"/_gateway/authz"
ENVOY_PREFIX = b"/_gateway/authz/envoy"
ANSWER_PATH = b"/_gateway/authz/answer"
#: The convention of the edge that asked ("nginx", "forwarded", "envoy"), for the sink.
CONVENTION_KEY = "gateway.forward_auth"

_METHOD = re.compile(r"[A-Z]{1,20}")
_REASON = re.compile(r"[a-z0-9_]{1,64}")
_HINT = re.compile(r"https?://[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]{1,500}")
_DECISION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Headers that name the original request; never handed to the stages.
_ORIGINAL = frozenset(
    {b"x-original-uri", b"x-original-method", b"x-forwarded-uri", b"x-forwarded-method", b"x-portal-answer"}
)
#: The identity headers `identity_headers` may set (Envoy removes the others).
_IDENTITY = (
    b"x-portal-subject",
    b"x-portal-access-level",
    b"x-portal-auth-methods",
    b"x-portal-assertion",
    b"x-portal-visible-parts",
)
#: The asking request's body framing: the decision never reads a body.
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
#: Errors an answer may be rendered as (the proxy path's client-facing classes).
_ERRORS: dict[str, type[GatewayError]] = {
    cls.error: cls
    for cls in (
        BadRequest,
        AuthenticationFailed,
        StepUpRequired,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        TooManyRequests,
        ServiceUnavailable,
    )
}


class OriginalRequest(NamedTuple):
    """What the edge proxy says the client asked for."""

    convention: str
    method: str
    raw_path: bytes
    query: bytes


def _refuse(reason: str, detail: str) -> BadRequest:
    return BadRequest(reason, detail)


def original_request(
    path: bytes, method: str, query: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> OriginalRequest:
    """Read the original request from an edge's check request, or refuse it (400)."""
    seen: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _ORIGINAL and name != b"x-portal-answer":
            if name in seen:
                raise _refuse("forward_auth_ambiguous", f"{name.decode()} appears more than once")
            seen[name] = value
    nginx = b"x-original-uri" in seen or b"x-original-method" in seen
    forwarded = b"x-forwarded-uri" in seen or b"x-forwarded-method" in seen
    envoy = path.startswith(ENVOY_PREFIX + b"/")
    if nginx + forwarded + envoy > 1:
        raise _refuse("forward_auth_ambiguous", "the original request is named by more than one convention")
    if envoy:
        return OriginalRequest("envoy", method, path[len(ENVOY_PREFIX) :], query)
    if path != AUTHZ_PATH:
        raise NotFound("route_not_found")
    if nginx:
        convention, uri_name, method_name = "nginx", b"x-original-uri", b"x-original-method"
    elif forwarded:
        convention, uri_name, method_name = "forwarded", b"x-forwarded-uri", b"x-forwarded-method"
    else:
        raise _refuse("forward_auth_no_original", "no X-Original-URI, X-Forwarded-Uri or Envoy path prefix")
    if uri_name not in seen or method_name not in seen:
        raise _refuse("forward_auth_incomplete", "the original method and URI must both be given")
    claimed_method = seen[method_name].decode("latin-1")
    if not _METHOD.fullmatch(claimed_method):
        raise _refuse("forward_auth_bad_method", "the original method is not an HTTP method token")
    # The request target as the client sent it (nginx $request_uri, Caddy {uri}),
    # read like the gateway's own HTTP server reads a request line: a fragment is
    # not part of the target (httptools drops it), the query starts at the first '?'.
    target = seen[uri_name].partition(b"#")[0]
    raw_path, _, claimed_query = target.partition(b"?")
    return OriginalRequest(convention, claimed_method, raw_path, claimed_query)


def _answer_token(exc: GatewayError, decision_id: str | None, hint_url: str | None) -> bytes:
    fields: dict[str, object] = {"s": exc.status_code, "e": exc.error, "r": exc.reason}
    if decision_id:
        fields["d"] = decision_id
    if hint_url:
        fields["h"] = hint_url
    if isinstance(exc, MethodNotAllowed) and exc.detail:
        fields["a"] = exc.detail
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


class _Answer(NamedTuple):
    """The decision fields an answer carries (read by `send_error` through getattr)."""

    decision_id: str | None
    hint_url: str | None
    outcome: str


def _parse_answer(token: bytes) -> tuple[GatewayError, _Answer]:
    bad = _refuse("forward_auth_bad_answer", "X-Portal-Answer is not an answer of this gateway")
    try:
        fields = json.loads(base64.urlsafe_b64decode(token + b"=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(fields, dict):
        raise bad
    cls = _ERRORS.get(str(fields.get("e")))
    reason, decision_id, hint, allow = fields.get("r"), fields.get("d"), fields.get("h"), fields.get("a")
    if cls is None or fields.get("s") != cls.status_code or not isinstance(reason, str):
        raise bad
    if not _REASON.fullmatch(reason):
        raise bad
    if decision_id is not None and not (isinstance(decision_id, str) and _DECISION_ID.fullmatch(decision_id)):
        raise bad
    if hint is not None and not (isinstance(hint, str) and _HINT.fullmatch(hint)):
        raise bad
    if allow is not None and not (isinstance(allow, str) and re.fullmatch(r"[A-Z, ]{1,200}", allow)):
        raise bad
    exc = cls(reason, allow)
    return exc, _Answer(decision_id, hint, "answer")


class ForwardAuthSink:
    """Runs the shared stages and answers 200 with what the edge copies upstream."""

    def __init__(self, stages: DecisionStages) -> None:
        self.stages = stages
        # The proxy path's own filter: what it would forward is what the edge may forward.
        self.credentials = CredentialFilter.of(stages.authentication.authenticators)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: CanonicalRequest = scope[SCOPE_KEY]
        admission = await self.stages.admit(scope, request)
        headers = [*admission.response_headers, *admission.identity, (b"cache-control", b"no-store")]
        kept = self.credentials.headers_for(scope["headers"], scope[ROUTE_KEY])
        cookie = "; ".join(v.decode("latin-1") for n, v in kept if n == b"cookie")
        if scope.get(CONVENTION_KEY) == "envoy":
            # Envoy copies allowed headers of this answer onto the upstream request
            # and removes those named in x-envoy-auth-headers-to-remove: the gateway's
            # credentials, and any identity header the client wrote that we did not set.
            given = {name for name, _ in admission.identity}
            removed = [name for name in _IDENTITY if name not in given]
            if not any(n == b"authorization" for n, _ in kept):
                removed.append(b"authorization")  # kept only where the route opts in
            if cookie:
                headers.append((b"cookie", cookie.encode("latin-1")))
            else:
                removed.append(b"cookie")
            headers.append((b"x-envoy-auth-headers-to-remove", b", ".join(removed)))
        elif cookie:
            # nginx / Caddy set the upstream Cookie from this header (the session cookie gone).
            headers.append((b"x-portal-cookie", cookie.encode("latin-1")))
        headers.append((b"content-length", b"0"))
        scope[STATUS_KEY] = 200
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class ForwardAuthMiddleware:
    """Takes the forward-auth paths out of the normal flow; everything else passes on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        decide: ASGIApp,
        peers: TrustedProxies,
        metrics: GatewayMetrics,
        lookup: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.app = app
        self.decide = decide
        self.peers = peers
        self.metrics = metrics
        self.lookup = lookup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: bytes = scope.get("raw_path") or scope["path"].encode("ascii", "replace")
        if path != AUTHZ_PATH and not path.startswith(AUTHZ_PATH + b"/"):
            await self.app(scope, receive, send)
            return
        peer = scope["client"][0] if scope.get("client") else ""
        if not self.peers.trusts(peer):
            # Only an edge proxy may say what the original request was.
            raise Forbidden("forward_auth_untrusted_peer", f"{peer} is not a forward_auth peer")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if path == ANSWER_PATH:
            await self._answer(scope, headers, send)
            return
        if not any(n in (b"x-original-uri", b"x-original-method") for n, _ in headers):
            await self._decide(scope, path, headers, receive, send)
            return
        try:
            await self._decide(scope, path, headers, receive, send)
        except GatewayError as exc:
            await self._refuse_for_nginx(scope, headers, exc, send)

    async def _decide(
        self, scope: Scope, path: bytes, headers: list[tuple[bytes, bytes]], receive: Receive, send: Send
    ) -> None:
        original = original_request(path, scope.get("method", "GET"), scope.get("query_string", b""), headers)
        # From here on the scope is the original request, so the canonicalization,
        # the stages, the access log and the metrics all see what the client asked.
        scope["method"] = original.method
        scope["raw_path"] = original.raw_path
        scope["path"] = original.raw_path.decode("latin-1")
        scope["query_string"] = original.query
        scope["headers"] = [(n, v) for n, v in headers if n not in _ORIGINAL and n not in _FRAMING]
        scope[CONVENTION_KEY] = original.convention
        await self.decide(scope, receive, send)

    async def _refuse_for_nginx(
        self, scope: Scope, headers: list[tuple[bytes, bytes]], exc: GatewayError, send: Send
    ) -> None:
        decision: Decision | None = scope.get(DECISION_KEY)
        decision_id = decision.decision_id if decision is not None else None
        hint_url = decision.hint_url if decision is not None else None
        token = _answer_token(exc, decision_id, hint_url)
        status = 401 if exc.status_code == 401 else 403

        async def as_nginx_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-portal-answer", token)]
                message = {**message, "status": status, "headers": [*message["headers"], *extra]}
            await send(message)

        # The log and the metrics record the answer the client will get, not nginx's 401/403
        # (ContextMiddleware counts the refusals it renders itself the same way).
        scope[STATUS_KEY] = exc.status_code
        if exc.status_code == 400:
            self.metrics.rejected.labels(exc.reason).inc()
        await self._send(scope, headers, exc, as_nginx_status, decision_id, hint_url)

    async def _answer(self, scope: Scope, headers: list[tuple[bytes, bytes]], send: Send) -> None:
        tokens = [v for n, v in headers if n == b"x-portal-answer"]
        if len(tokens) != 1:
            raise _refuse("forward_auth_bad_answer", "exactly one X-Portal-Answer is required")
        exc, answer = _parse_answer(tokens[0].strip())
        scope[STATUS_KEY] = exc.status_code
        await self._send(scope, headers, exc, send, answer.decision_id, answer.hint_url)

    async def _send(
        self,
        scope: Scope,
        headers: list[tuple[bytes, bytes]],
        exc: GatewayError,
        send: Send,
        decision_id: str | None,
        hint_url: str | None,
    ) -> None:
        accept = accept_language = ""
        for name, value in headers:
            if name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"accept-language":
                accept_language = value.decode("latin-1")
        await send_error(
            send,
            exc,
            request_id=scope.get(REQUEST_ID_KEY, "-"),
            accept=accept,
            accept_language=accept_language,
            lookup=self.lookup,
            hint_url=hint_url,
            decision_id=decision_id,
        )


def mount_forward_auth(
    app: ASGIApp,
    *,
    enabled: bool,
    peers: list[str],
    trusted_proxies: list[str],
    max_path_bytes: int,
    stages: DecisionStages,
    metrics: GatewayMetrics,
    lookup: Callable[[str, str], str | None] | None,
) -> ASGIApp:
    """`app` with the forward-auth paths in front of it (or `app` itself when disabled).

    The claimed request passes through its own `CanonicalizeMiddleware` (the same
    class the proxy path uses), which believes X-Forwarded-For/-Host/-Proto from
    the edge peers as well as from `trusted_proxies`: the edge is the hop that saw
    the client.
    """
    if not enabled:
        return app
    edge = peers or trusted_proxies
    decide = CanonicalizeMiddleware(
        ForwardAuthSink(stages),
        trusted_proxies=TrustedProxies([*edge, *trusted_proxies]),
        max_path_bytes=max_path_bytes,
    )
    return ForwardAuthMiddleware(app, decide=decide, peers=TrustedProxies(edge), metrics=metrics, lookup=lookup)
