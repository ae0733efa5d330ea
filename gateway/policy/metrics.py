"""Prometheus metrics of the policy component, on a registry the caller passes in."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.policy.cache import CacheStats

__all__ = ["PolicyMetrics"]


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry, cache_stats: CacheStats | None = None) -> None:
        #: Decision cache counters: plain ints bumped on the hot path, exported at scrape time.
        self.cache_stats = cache_stats if cache_stats is not None else CacheStats()
        registry.register(_CacheCollector(self.cache_stats))
        self.decisions = Counter(
            "portal_policy_decisions",
            "Policy decisions by outcome and reason code.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.errors = Counter(
            "portal_policy_errors",
            "Policy evaluations that raised (each answered as a deny).",
            registry=registry,
        )
        self.latency = Histogram(
            "portal_policy_decision_seconds",
            "Time to decide (resolve facts + policy), seconds.",
            buckets=(0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1),
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


class _CacheCollector(Collector):
    def __init__(self, stats: CacheStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, doc, value in (
            ("portal_policy_cache_hits", "Decisions answered from the decision cache.", self.stats.hits),
            ("portal_policy_cache_misses", "Decisions the policy engine had to evaluate.", self.stats.misses),
            (
                "portal_policy_cache_evictions",
                "Least-recently-used decisions dropped because the cache was full.",
                self.stats.evictions,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
