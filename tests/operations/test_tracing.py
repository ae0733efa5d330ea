"""Tracing against an OTLP/HTTP receiver the test starts: the stages are spans of one trace, the
backend receives that trace's `traceparent`, a trusted peer's trace is continued, a client's
`traceparent` through an untrusted peer is neither continued nor forwarded."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from gateway.tracing import parse_traceparent
from tests.integration.conftest import portal_settings
from tests.integration.test_roles import login_anna
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

USAGE = "/api/lines/436641000001/usage"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


class Receiver:
    """An OTLP/HTTP traces endpoint: POST /v1/traces with an ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.spans: list[Any] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        headers = [(b"content-type", b"application/x-protobuf")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class Backend:
    def __init__(self) -> None:
        self.traceparents: list[str | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        value = dict(scope["headers"]).get(b"traceparent")
        self.traceparents.append(value.decode() if value else None)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})


@asynccontextmanager
async def traced_gateway(tmp_path: Path, trusted: list[str]) -> AsyncIterator[tuple[str, Receiver, Backend]]:
    receiver, backend = Receiver(), Backend()
    gw_port, be_port, otlp_port = free_port(), free_port(), free_port()
    settings = portal_settings(
        tmp_path, gw_port, f"http://127.0.0.1:{be_port}",
        **{"tracing.enabled": True, "tracing.endpoint": f"http://127.0.0.1:{otlp_port}/v1/traces",
           "tracing.export_interval_seconds": 0.2, "server.trusted_proxies": trusted},
    )
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    async with serve_asgi(receiver, port_override=otlp_port), serve_asgi(backend, port_override=be_port):
        async with serve_asgi(app, port_override=gw_port) as url:
            yield url, receiver, backend


async def _spans_of(receiver: Receiver, trace_id: bytes, names: set[str]) -> dict[str, Any]:
    for _ in range(100):
        found = {s.name: s for s in receiver.spans if s.trace_id == trace_id}
        if names <= set(found):
            return found
        await asyncio.sleep(0.1)
    got = [s.name for s in receiver.spans]
    raise AssertionError(f"spans {names} of trace {trace_id.hex()} not exported; got {got}")


async def test_stages_are_spans_and_the_backend_continues_the_trace(tmp_path: Path) -> None:
    async with traced_gateway(tmp_path, trusted=[]) as (url, receiver, backend):
        async with httpx.AsyncClient(base_url=url, timeout=20) as c:
            anna = await login_anna(c)
            r = await c.get(USAGE, headers={**anna, "traceparent": CLIENT_PARENT})
            assert r.status_code == 200
        sent = backend.traceparents[-1]
        assert sent is not None
        parent = parse_traceparent(sent.encode())
        assert parent is not None
        # An untrusted client's trace id is not continued, and its header is not forwarded.
        assert f"{parent.trace_id:032x}" != CLIENT_TRACE and CLIENT_TRACE not in sent
        spans = await _spans_of(receiver, parent.trace_id.to_bytes(16, "big"),
                                {"gateway.request", "authenticate", "authorize", "resolve", "decide", "sign",
                                 "forward"})
        root = spans["gateway.request"]
        for stage in ("authenticate", "authorize", "sign", "forward"):
            assert spans[stage].parent_span_id == root.span_id, stage
        for step in ("resolve", "decide"):  # inside the policy's answer
            assert spans[step].parent_span_id == spans["authorize"].span_id, step
        # The backend's parent is the forward span.
        assert spans["forward"].span_id == parent.span_id.to_bytes(8, "big")
        attributes = {a.key: a.value.string_value for a in spans["authorize"].attributes}
        assert attributes["portal.action"] == "view_usage" and attributes["portal.outcome"] == "allow"
        assert not any("pgs_" in a.value.string_value for s in spans.values() for a in s.attributes)


async def test_a_trusted_peers_trace_is_continued(tmp_path: Path) -> None:
    async with traced_gateway(tmp_path, trusted=["127.0.0.1"]) as (url, receiver, backend):
        async with httpx.AsyncClient(base_url=url, timeout=20) as c:
            anna = await login_anna(c)
            assert (await c.get(USAGE, headers={**anna, "traceparent": CLIENT_PARENT})).status_code == 200
            # A malformed traceparent from the same trusted peer starts a new trace instead.
            bad = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01\n"
            assert (await c.get(USAGE, headers={**anna, "traceparent": bad.strip() + "zz"})).status_code == 200
        continued, restarted = backend.traceparents[-2:]
        assert continued is not None and continued.split("-")[1] == CLIENT_TRACE
        assert restarted is not None and restarted.split("-")[1] != CLIENT_TRACE
        spans = await _spans_of(receiver, bytes.fromhex(CLIENT_TRACE), {"gateway.request"})
        assert spans["gateway.request"].parent_span_id == bytes.fromhex("00f067aa0ba902b7")


def test_traceparent_parser_refuses_what_w3c_refuses() -> None:
    assert parse_traceparent(CLIENT_PARENT.encode()) is not None
    for bad in (f"ff-{CLIENT_TRACE}-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01",
                f"00-{CLIENT_TRACE}-{'0' * 16}-01", f"00-{CLIENT_TRACE.upper()}-00f067aa0ba902b7-01",
                f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01-extra", "garbage"):
        assert parse_traceparent(bad.encode()) is None, bad
