"""A shadow policy: a candidate evaluated beside the active one on live decisions, never answering.

`[policy] shadow = "<path>"` names a candidate policy. It is loaded and checked like the
active one (strict load, model check, the decision tables); a broken candidate is
reported (readiness "degraded", `portal_policy_shadow_loaded` 0) and simply not
evaluated: the gateway never fails for it.

The request path only *offers* a decided cell (the facts the active policy decided on,
already resolved from the directory, plus its verdict): a sample-rate draw and a
`put_nowait` on a bounded queue, nothing more. A background task evaluates the queue
with the shadow engine at most `shadow_max_per_second` times a second (the CPU bound),
counts agreements and disagreements, and writes each disagreement to the decision log
as a record of its own. A full queue drops the cell and counts it, so a slow shadow
never builds up memory or latency.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.policy.decision_log import DecisionLog
from gateway.policy.engine import PolicyEngine, PolicyLoadError, Verdict, load_engine
from gateway.policy.model import Caller, Resource
from gateway.settings import PolicySettings

__all__ = ["ShadowCell", "ShadowPolicy"]

log = logging.getLogger("gateway.policy.shadow")


@dataclass(frozen=True, slots=True)
class ShadowCell:
    """One live decision as the active policy saw it: facts, verdict and the ids to log."""

    actor: Caller
    action: str
    resource: Resource
    active: Verdict
    active_revision: str
    decision_id: str
    request_id: str
    subject: str
    access_level: str
    resource_type: str
    resource_id: str | None


class _Counts:
    """Plain counters bumped by the one background task, exported at scrape time."""

    def __init__(self) -> None:
        self.agreements: dict[str, int] = {}
        self.disagreements: dict[tuple[str, str, str, str, str], int] = {}
        self.dropped: dict[str, int] = {}
        self.loads: dict[str, int] = {}
        self.loaded = 0


class ShadowPolicy:
    """Loads the candidate, takes offered cells, evaluates them off the request path."""

    def __init__(
        self,
        *,
        path: Path,
        tests_path: Path | None,
        route_actions: Callable[[], Sequence[tuple[str, str]]],
        settings: PolicySettings,
        decision_log: DecisionLog,
        registry: CollectorRegistry,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.tests_path = tests_path
        self._route_actions = route_actions
        self.settings = settings
        self.decision_log = decision_log
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self.counts = _Counts()
        registry.register(_ShadowCollector(self))
        self._engine: PolicyEngine | None = None
        self._ready: tuple[bool, str] = (False, "shadow policy not loaded yet")
        self._queue: asyncio.Queue[ShadowCell] = asyncio.Queue(maxsize=settings.shadow_queue_size)
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self.load()

    # ------------------------------------------------------------------ loading
    @property
    def engine(self) -> PolicyEngine | None:
        return self._engine

    def ready(self) -> tuple[bool, str]:
        return self._ready

    def _build(self) -> PolicyEngine:
        engine = load_engine(
            self.path,
            route_actions=self._route_actions(),
            business_station_url=self.settings.business_station_url,
            cache_size=self.settings.cache_size,
        )
        if self.tests_path is not None:
            from gateway.policy.testing import run_policy_tests

            report = run_policy_tests(engine, self.tests_path)
            if not report.ok:
                raise PolicyLoadError(report.failure_lines())
        return engine

    def load(self) -> bool:
        """Build, check and test the candidate; a failure turns the shadow off until it loads."""
        try:
            engine = self._build()
        except PolicyLoadError as exc:
            return self._failed(exc.problems or ["unknown problem"])
        except Exception as exc:  # a shadow never takes the gateway down
            log.exception("shadow policy load failed unexpectedly")
            return self._failed([f"{type(exc).__name__}: {exc}"])
        self._engine = engine
        self._ready = (True, f"shadow policy {engine.revision[:12]} loaded from {self.path}")
        self.counts.loaded = 1
        self.counts.loads["success"] = self.counts.loads.get("success", 0) + 1
        log.info("shadow policy %s loaded from %s", engine.revision[:12], self.path)
        return True

    def _failed(self, problems: list[str]) -> bool:
        self._engine = None
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        self._ready = (False, f"shadow policy ignored: {problems[0]}{more}")
        self.counts.loaded = 0
        self.counts.loads["failure"] = self.counts.loads.get("failure", 0) + 1
        for problem in problems:
            log.error("shadow policy ignored: %s", problem)
        return False

    async def reload(self) -> bool:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await asyncio.to_thread(self.load)

    def fingerprint(self) -> float:
        try:
            return float(self.path.stat().st_mtime_ns)
        except OSError:
            return -1.0

    # -------------------------------------------------------- the request path
    def offer(self, cell: ShadowCell) -> None:
        """Called by the authorizer after it decided: O(1), never raises, never waits."""
        if self._engine is None:
            return
        rate = self.settings.shadow_sample_rate
        if rate < 1.0 and self._rng.random() >= rate:
            return
        try:
            self._queue.put_nowait(cell)
        except asyncio.QueueFull:
            self._drop("queue_full")

    def _drop(self, why: str) -> None:
        self.counts.dropped[why] = self.counts.dropped.get(why, 0) + 1

    # ------------------------------------------------------- the background task
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="shadow-policy")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def drain(self) -> None:
        """Wait until every queued cell is evaluated (tests, graceful shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        rate = self.settings.shadow_max_per_second
        burst = max(1.0, rate / 10)  # a tenth of a second's worth: short bursts, bounded CPU
        tokens, last = burst, self._monotonic()
        while True:
            cell = await self._queue.get()
            try:
                now = self._monotonic()
                tokens = min(burst, tokens + (now - last) * rate)
                last = now
                if tokens < 1.0:
                    await asyncio.sleep((1.0 - tokens) / rate)
                    now = self._monotonic()
                    tokens = min(burst, tokens + (now - last) * rate)
                    last = now
                tokens -= 1.0
                self.evaluate(cell)
            except Exception:  # never let one cell stop the shadow
                log.exception("shadow evaluation failed")
                self._drop("error")
            finally:
                self._queue.task_done()

    def evaluate(self, cell: ShadowCell) -> Verdict | None:
        """Decide `cell` with the shadow policy; count and log the comparison."""
        engine = self._engine
        if engine is None:
            self._drop("no_shadow_policy")
            return None
        shadow = engine.decide(cell.actor, cell.action, cell.resource)
        a = cell.active
        if (a.outcome, a.reason, a.visible_parts, a.hint_url) == (
            shadow.outcome, shadow.reason, shadow.visible_parts, shadow.hint_url,
        ):
            self.counts.agreements[cell.action] = self.counts.agreements.get(cell.action, 0) + 1
            return shadow
        key = (cell.action, a.outcome, shadow.outcome, a.reason, shadow.reason)
        self.counts.disagreements[key] = self.counts.disagreements.get(key, 0) + 1
        self.decision_log.record(
            decision_id=cell.decision_id,
            request_id=cell.request_id,
            subject=cell.subject,
            access_level=cell.access_level,
            action=cell.action,
            resource_type=cell.resource_type,
            resource_id=cell.resource_id,
            outcome=a.outcome,
            reason=a.reason,
            policy_revision=cell.active_revision,
            shadow_outcome=shadow.outcome,
            shadow_reason=shadow.reason,
            shadow_revision=engine.revision,
        )
        return shadow


class _ShadowCollector(Collector):
    def __init__(self, shadow: ShadowPolicy) -> None:
        self.shadow = shadow

    def collect(self) -> Iterator[Metric]:
        c = self.shadow.counts
        agree = CounterMetricFamily(
            "portal_policy_shadow_agreements",
            "Live decisions the shadow policy decided alike (outcome, reason, parts), by action.",
            labels=["action"],
        )
        for action, n in list(c.agreements.items()):
            agree.add_metric([action], n)
        yield agree
        disagree = CounterMetricFamily(
            "portal_policy_shadow_disagreements",
            "Live decisions the shadow policy decided differently.",
            labels=["action", "active_outcome", "shadow_outcome", "active_reason", "shadow_reason"],
        )
        for key, n in list(c.disagreements.items()):
            disagree.add_metric(list(key), n)
        yield disagree
        dropped = CounterMetricFamily(
            "portal_policy_shadow_dropped",
            "Decisions not given to the shadow policy: queue_full, error, no_shadow_policy.",
            labels=["why"],
        )
        for why, n in list(c.dropped.items()):
            dropped.add_metric([why], n)
        yield dropped
        loads = CounterMetricFamily("portal_policy_shadow_loads", "Shadow policy (re)loads by result.",
                                    labels=["result"])
        for result, n in list(c.loads.items()):
            loads.add_metric([result], n)
        yield loads
        yield GaugeMetricFamily(
            "portal_policy_shadow_loaded", "1 if the shadow policy loaded and is evaluated, else 0.", value=c.loaded
        )
        yield GaugeMetricFamily(
            "portal_policy_shadow_queue", "Decisions waiting for the shadow policy.",
            value=self.shadow._queue.qsize(),
        )
