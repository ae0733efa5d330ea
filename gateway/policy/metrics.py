"""Prometheus metrics of the policy component, on a registry the caller passes in.

The per-decision metrics (decisions by outcome/reason, latency, cache hits and
misses) are plain counters in this object, exported by a collector at scrape
time: prometheus_client's Counter/Histogram take a lock on every increment, which
is a sizeable share of a cached decision (one event loop per worker: no lock needed).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.policy.cache import CacheStats

__all__ = ["PolicyMetrics"]

_LATENCY_BUCKETS = (0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1)


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry, cache_stats: CacheStats | None = None) -> None:
        #: Decision cache counters: plain ints bumped on the hot path, exported at scrape time.
        self.cache_stats = cache_stats if cache_stats is not None else CacheStats()
        self._decisions: dict[tuple[str, str], int] = {}
        self._latency: list[float] = [0.0] * (len(_LATENCY_BUCKETS) + 2)  # per bucket..., +Inf, sum
        registry.register(_DecisionCollector(self))
        self.errors = Counter(
            "portal_policy_errors",
            "Policy evaluations that raised (each answered as a deny).",
            registry=registry,
        )
        self.reloads = Counter(
            "portal_policy_reloads",
            "Policy reload attempts by result.",
            ["result"],
            registry=registry,
        )
        self.last_reload_ok = Gauge(
            "portal_policy_last_reload_success",
            "1 if the last policy (re)load passed its checks and tests, else 0.",
            registry=registry,
        )
        self.revision = Info(
            "portal_policy_revision",
            "The policy revision being served (sha256 of the source).",
            registry=registry,
        )
        self.cache_entries = Gauge(
            "portal_policy_cache_entries",
            "Entries in the decision cache of the serving policy.",
            registry=registry,
        )

    def observe(self, outcome: str, reason: str, seconds: float) -> None:
        """Count one decision and its latency."""
        key = (outcome, reason)
        self._decisions[key] = self._decisions.get(key, 0) + 1
        hist = self._latency
        hist[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        hist[-1] += seconds


class _DecisionCollector(Collector):
    def __init__(self, metrics: PolicyMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "portal_policy_decisions", "Policy decisions by outcome and reason code.", labels=["outcome", "reason"]
        )
        for (outcome, reason), count in list(self.metrics._decisions.items()):
            decisions.add_metric([outcome, reason], count)
        yield decisions
        latency = HistogramMetricFamily(
            "portal_policy_decision_seconds", "Time to decide (resolve facts + policy), seconds."
        )
        cumulative = 0.0
        buckets: list[tuple[str, float]] = []
        hist = list(self.metrics._latency)
        for bound, in_bucket in zip((*_LATENCY_BUCKETS, float("inf")), hist[:-1], strict=True):
            cumulative += in_bucket
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency.add_metric([], buckets, sum_value=hist[-1])
        yield latency
        stats = self.metrics.cache_stats
        for name, doc, value in (
            ("portal_policy_cache_hits", "Decisions answered from the decision cache.", stats.hits),
            ("portal_policy_cache_misses", "Decisions the policy engine had to evaluate.", stats.misses),
            (
                "portal_policy_cache_evictions",
                "Least-recently-used decisions dropped because the cache was full.",
                stats.evictions,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
