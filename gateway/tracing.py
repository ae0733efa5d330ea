"""Distributed tracing: W3C Trace Context in, OpenTelemetry spans out, off by default.

`[tracing] enabled = true` exports one span per data-plane request (`gateway.request`) with
children for the stages (`authenticate`, `resolve`, `decide`, `sign`, `forward`) to an OTLP/HTTP
collector. A `traceparent` header continues the client's trace only when it comes from a
trusted peer (`server.trusted_proxies`, the same trust as X-Forwarded-For) and is well formed
(W3C Trace Context level 1, checked with a full match); otherwise the gateway starts a trace of
its own and the client's header is not forwarded — a client must not be able to choose the
trace id a backend logs. The backend receives a `traceparent` whose parent is the `forward` span.

Disabled (the default), `Tracing.span` returns one shared no-op context manager: the hot path
pays one attribute check. The SDK's provider is built per gateway, never the global one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TraceParent", "Tracing", "TracingSettings", "parse_traceparent"]

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


@dataclass(frozen=True, slots=True)
class TracingSettings:
    enabled: bool = False
    #: OTLP/HTTP traces endpoint of the collector.
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "portal-gateway"
    #: Share of new traces recorded (a trusted parent's sampled flag is followed).
    sample_ratio: float = 1.0
    #: Seconds between exports of finished spans.
    export_interval_seconds: float = 2.0
    timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    span_id: int
    sampled: bool


def parse_traceparent(value: bytes) -> TraceParent | None:
    """A W3C `traceparent` value, or None when it is not one (version ff and zero ids refused)."""
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags = m.groups()
    if version == b"ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(int(trace_id, 16), int(span_id, 16), bool(int(flags, 16) & 1))


class _NoSpan(AbstractContextManager[None]):
    def __exit__(self, *exc: object) -> Literal[False]:
        return False


_NO_SPAN = _NoSpan()


class Tracing:
    """Builds spans when enabled; every method is cheap and safe when it is not."""

    def __init__(self, settings: TracingSettings) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self._provider: Any = None
        self._tracer: Any = None
        if self.enabled:
            self._build()

    def _build(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        s = self.settings
        provider = TracerProvider(
            resource=Resource.create({"service.name": s.service_name}),
            sampler=ParentBased(TraceIdRatioBased(s.sample_ratio)),
        )
        exporter = OTLPSpanExporter(endpoint=s.endpoint, timeout=s.timeout_seconds)
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=int(s.export_interval_seconds * 1000))
        )
        self._provider = provider
        self._tracer = provider.get_tracer("portal-gateway")

    @contextlib.contextmanager
    def request(
        self, name: str, parent: TraceParent | None, attributes: dict[str, str]
    ) -> Iterator[Any]:
        """The root span of one request (continuing `parent` when the caller trusts it)."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        context = None
        if parent is not None:
            span_context = SpanContext(
                trace_id=parent.trace_id, span_id=parent.span_id, is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT),
            )
            context = trace.set_span_in_context(NonRecordingSpan(span_context))
        with self._tracer.start_as_current_span(name, context=context, kind=SpanKind.SERVER,
                                                attributes=attributes) as span:
            yield span

    def span(self, name: str) -> AbstractContextManager[Any]:
        """A child span of the current one, or the shared no-op when tracing is off."""
        if not self.enabled:
            return _NO_SPAN
        span: AbstractContextManager[Any] = self._tracer.start_as_current_span(name)
        return span

    @staticmethod
    def annotate(**attributes: str) -> None:
        """Attributes on the current span (no-op without one)."""
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(attributes)

    @staticmethod
    def traceparent() -> bytes | None:
        """`traceparent` for the next hop: the current span as parent."""
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}".encode()

    async def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # flushes what is queued
