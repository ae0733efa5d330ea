"""Prometheus metrics of the data plane, on a registry passed in (never the global one)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["GatewayMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # The two per-request metrics are plain counters in this object, exported by a
        # collector at scrape time: prometheus_client's Counter/Histogram take a lock on
        # every increment, which showed up in the data plane's profile.
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # route → [count per bucket..., sum]
        self._decisions: dict[tuple[str, str, str], int] = {}  # (role, action, outcome) → count
        registry.register(_RequestCollector(self))
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
        self.client_body_timeouts = Counter(
            "portal_gateway_client_body_timeouts",
            "Requests refused with 408 because the client stopped sending its body, by upstream.",
            ["upstream"],
            registry=registry,
        )
        self.client_read_timeouts = Counter(
            "portal_gateway_client_read_timeouts",
            "Streamed answers cut off because the client stopped reading for the upstream's "
            "stream_idle_timeout_seconds, by upstream.",
            ["upstream"],
            registry=registry,
        )
        self.client_gone = Counter(
            "portal_gateway_client_disconnects",
            "Requests abandoned by the client before the answer was complete.",
            registry=registry,
        )

    def count_decision(self, role: str, action: str, outcome: str) -> None:
        """One policy decision on the data plane or forward-auth (bounded: roles by actions by outcomes)."""
        key = (role, action, outcome)
        self._decisions[key] = self._decisions.get(key, 0) + 1

    def observe(self, route: str, action: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (no lock: one event loop per process)."""
        key = (route, action, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        hist = self._latency.get(route)
        if hist is None:
            hist = self._latency[route] = [0.0] * (len(_LATENCY_BUCKETS) + 2)
        hist[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        hist[-1] += seconds


class _RequestCollector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "portal_gateway_requests",
            "Requests answered, by route, portal action and status.",
            labels=["route", "action", "status"],
        )
        for (route, action, status), count in list(self.metrics._requests.items()):
            requests.add_metric([route, action, str(status)], count)
        yield requests
        decisions = CounterMetricFamily(
            "portal_gateway_decisions",
            "Policy decisions asked by requests, by the actor's role, the portal action and the outcome.",
            labels=["role", "action", "outcome"],
        )
        for (role, action, outcome), count in list(self.metrics._decisions.items()):
            decisions.add_metric([role, action, outcome], count)
        yield decisions
        latency = HistogramMetricFamily(
            "portal_gateway_request_duration_seconds",
            "Time from the first byte in to the last byte out, by route.",
            labels=["route"],
        )
        for route, hist in list(self.metrics._latency.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, in_bucket in zip((*_LATENCY_BUCKETS, float("inf")), hist[:-1], strict=True):
                cumulative += in_bucket
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric([route], buckets, sum_value=hist[-1])
        yield latency
