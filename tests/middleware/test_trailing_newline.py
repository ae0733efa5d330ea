"""Every security pattern refuses a value with a trailing newline (issue 8, point 4).

``re.match(r"^[a-z]+$", "svc\\n")`` matches: ``$`` also matches before a final
"\\n". An HTTP/1.1 server cannot deliver a raw LF inside a header, but an ASGI
server behind another front end, a JWT claim, or a route file can, and a value
that passes with its LF goes on into a header the gateway writes. Each check is
driven through the code that uses it, with the value a request, token or file
would carry.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.errors import BadRequest
from gateway.metrics import GatewayMetrics
from gateway.middleware.canonicalize import _HOST, SCOPE_KEY, CanonicalizeMiddleware, TrustedProxies
from gateway.middleware.context import AccessLog, ContextMiddleware
from gateway.routes import RouteTableError, build_table

Message = dict[str, Any]


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def scope_with(headers: list[tuple[bytes, bytes]], client: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/status",
        "raw_path": b"/api/status",
        "query_string": b"",
        "headers": headers,
        "client": (client, 40000),
        "scheme": "http",
    }


async def canonicalize(headers: list[tuple[bytes, bytes]], trusted: list[str] | None = None) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    stage = CanonicalizeMiddleware(app, trusted_proxies=TrustedProxies(trusted or []))
    await stage(scope_with(headers), _receive, _send)
    return seen


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


@pytest.mark.parametrize("host", ["gw.example\n", "gw.example:443\n", "[::1]\n", "[::1]:8443\n"])
def test_host_pattern_refuses_a_trailing_newline(host: str) -> None:
    # The stage strips surrounding whitespace first; the pattern must not rely on it.
    assert _HOST.fullmatch(host) is None
    assert _HOST.fullmatch(host.rstrip("\n")) is not None


@pytest.mark.parametrize("host", [b"gw.example\n", b"gw.example\n.evil", b"gw.example\r\nx-portal-subject: a"])
async def test_no_newline_reaches_the_canonical_host(host: bytes) -> None:
    try:
        seen = await canonicalize([(b"host", host)])
    except BadRequest as exc:
        assert exc.reason == "bad_host"
    else:
        assert seen[SCOPE_KEY].host == "gw.example"


async def test_forwarded_host_from_a_trusted_proxy_never_carries_a_newline() -> None:
    with pytest.raises(BadRequest) as info:
        await canonicalize([(b"host", b"gw.example"), (b"x-forwarded-host", b"evil.example\nx: y")], ["127.0.0.1"])
    assert info.value.reason == "bad_host"


async def test_forwarded_for_hop_with_newlines_is_an_address_or_400() -> None:
    seen = await canonicalize([(b"x-forwarded-for", b"203.0.113.7\n")], ["127.0.0.1"])
    assert (seen[SCOPE_KEY].client_ip, seen[SCOPE_KEY].forwarded_for) == ("203.0.113.7", "203.0.113.7, 127.0.0.1")
    with pytest.raises(BadRequest) as info:
        await canonicalize([(b"x-forwarded-for", b"203.0.113.7\nx-portal-subject: a")], ["127.0.0.1"])
    assert info.value.reason == "bad_forwarded_for"


async def test_valid_host_still_passes() -> None:
    seen = await canonicalize([(b"host", b"GW.example:8443")])
    assert seen[SCOPE_KEY].host == "gw.example:8443"


async def test_request_id_with_trailing_newline_is_not_adopted() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send_: Any) -> None:
        seen.update(scope)
        await _ok(scope, receive, send_)

    context = ContextMiddleware(app, metrics=GatewayMetrics(CollectorRegistry()), access_log=AccessLog(io.StringIO()))
    await context(scope_with([(b"x-request-id", b"trace-1\n")]), _receive, send)
    assert seen["gateway.request_id"] not in ("trace-1\n", "trace-1")
    await context(scope_with([(b"x-request-id", b"trace-1")]), _receive, send)
    assert seen["gateway.request_id"] == "trace-1"


ROUTE = {"methods": ["GET"], "path": "/api/lines/{msisdn}/usage", "action": "view_usage", "resource": "line",
         "param": "msisdn", "upstream": "portal"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("action", "view_usage\n"),
        ("path", "/api/lines/{msisdn}/usage\n"),
        ("path", "/api/lines\n/{msisdn}/usage"),
        ("path", "/api/lines/{msisdn}\n/usage"),
    ],
    ids=["action", "literal-at-end", "literal-inside", "parameter"],
)
def test_route_file_names_with_trailing_newline_are_refused(key: str, value: str) -> None:
    with pytest.raises(RouteTableError, match="test-routes"):
        build_table([{**ROUTE, key: value}], "test-routes", ["portal"])


def test_the_same_route_without_newline_loads() -> None:
    table = build_table([ROUTE], "test-routes", ["portal"])
    assert [r.action for r in table.routes] == ["view_usage"]
