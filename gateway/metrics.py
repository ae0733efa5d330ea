"""Prometheus metrics of the data plane, on a registry passed in (never the global one)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "portal_gateway_requests",
            "Requests answered, by route, portal action and status.",
            ["route", "action", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "portal_gateway_request_duration_seconds",
            "Time from the first byte in to the last byte out, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = Counter(
            "portal_gateway_upstream_errors",
            "Failures talking to a backend, by upstream and kind (timeout, unavailable, error).",
            ["upstream", "kind"],
            registry=registry,
        )
        self.rejected = Counter(
            "portal_gateway_rejected_requests",
            "Requests refused before routing (non-canonical path, spoofing, size), by reason.",
            ["reason"],
            registry=registry,
        )
        self.ready = Gauge(
            "portal_gateway_dependency_ready",
            "1 when a dependency (store, directory, policy, upstream, ...) answered its last check.",
            ["dependency"],
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self.client_gone = Counter(
            "portal_gateway_client_disconnects",
            "Requests abandoned by the client before the answer was complete.",
            registry=registry,
        )

    def observe(self, route: str, action: str, status: int, seconds: float) -> None:
        """Count one answered request; label children are cached (labels() takes a lock)."""
        key = (route, action, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, action, str(status))
        child.inc()
        hist = self._latency_children.get(route)
        if hist is None:
            hist = self._latency_children[route] = self.latency.labels(route)
        hist.observe(seconds)
