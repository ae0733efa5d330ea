"""The policy component as the gateway sees it: authorize, can_register, reload, ready.

Holds one reference to the serving `PolicyEngine`. A reload builds a new engine
off the event loop, runs the strict checks and every decision table in
policies/tests/, and swaps the reference only if all pass; otherwise the last
good policy keeps serving and the failure shows in logs, metrics and `ready()`.
A decision reads the reference once, so a swap never splits a decision between
two revisions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.directory.base import Directory, DirectoryUnavailable
from gateway.policy.decision import Decision, DecisionIds
from gateway.policy.decision_log import DecisionLog
from gateway.policy.engine import (
    Explanation,
    PolicyEngine,
    PolicyLoadError,
    Verdict,
    load_engine,
    read_route_actions,
    revision_of,
)
from gateway.policy.metrics import PolicyMetrics
from gateway.policy.model import Caller, Resource
from gateway.policy.registration import RegistrationTarget, RegistrationVerdict
from gateway.policy.resolver import Resolver, UnknownResourceType
from gateway.policy.shadow import ShadowCell, ShadowPolicy
from gateway.principal import Principal
from gateway.settings import PolicySettings, Settings
from gateway.tracing import Tracing, TracingSettings

__all__ = ["Authorizer"]

log = logging.getLogger("gateway.policy")


class Authorizer:
    """Decides portal actions. Construction loads the policy strictly (raises PolicyLoadError)."""

    def __init__(
        self,
        *,
        directory: Directory,
        clock: Callable[[], float],
        settings: PolicySettings | None = None,
        base_dir: str | Path = ".",
        registry: CollectorRegistry | None = None,
        routes_path: str | Path | None = "config/routes.toml",
        route_actions: Sequence[tuple[str, str]] | None = None,
        decision_log: DecisionLog | None = None,
        run_tests: bool = True,
    ) -> None:
        self.settings = settings or PolicySettings()
        base = Path(base_dir)
        self.policy_path = _under(base, self.settings.path)
        self.tests_path = _under(base, self.settings.tests) if run_tests and self.settings.tests else None
        self.routes_path = _under(base, routes_path) if routes_path is not None else None
        self._fixed_route_actions = list(route_actions) if route_actions is not None else None
        self.directory = directory
        self.clock = clock
        #: Spans for the resolve and decide steps (a shared no-op unless tracing is on).
        self.tracing = Tracing(TracingSettings())
        self.resolver = Resolver(directory, clock)
        self.metrics = PolicyMetrics(registry if registry is not None else CollectorRegistry())
        self.decision_log = decision_log or DecisionLog(self.settings.decision_log, clock=clock)
        self._lock: asyncio.Lock | None = None
        self._decision_ids = DecisionIds()
        self._engine = self._build()
        self._ready: tuple[bool, str] = (True, f"policy {self._engine.revision[:12]} loaded")
        self._last_failure: str | None = None
        self.metrics.last_reload_ok.set(1)
        self.metrics.revision.info({"revision": self._engine.revision})
        self.metrics.cache_entries.set_function(lambda: float(self._engine.cache_len()))
        #: The candidate policy evaluated beside this one (never answering), if configured.
        self.shadow: ShadowPolicy | None = None
        if self.settings.shadow:
            self.shadow = ShadowPolicy(
                path=_under(base, self.settings.shadow),
                tests_path=(
                    _under(base, self.settings.shadow_tests) if run_tests and self.settings.shadow_tests
                    else self.tests_path
                ),
                route_actions=self.route_actions,
                settings=self.settings,
                decision_log=self.decision_log,
                registry=registry if registry is not None else CollectorRegistry(),
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        directory: Directory,
        clock: Callable[[], float],
        registry: CollectorRegistry,
        tracing: Tracing | None = None,
    ) -> Authorizer:
        authorizer = cls(
            directory=directory,
            clock=clock,
            settings=settings.policy,
            base_dir=settings.base_dir,
            registry=registry,
            routes_path=settings.path(settings.routes.path),
        )
        if tracing is not None:
            authorizer.tracing = tracing
        return authorizer

    # ------------------------------------------------------------------ building
    def route_actions(self) -> list[tuple[str, str]]:
        if self._fixed_route_actions is not None:
            return self._fixed_route_actions
        if self.routes_path is None:
            return []
        try:
            return read_route_actions(self.routes_path)
        except (OSError, ValueError) as exc:
            raise PolicyLoadError([f"{self.routes_path}:1:1: cannot read route table: {exc}"]) from None

    def _on_error(self, action: str, exc: BaseException) -> None:
        self.metrics.errors.inc()

    def _build(self) -> PolicyEngine:
        """Load, check and test a new engine from the files; raise PolicyLoadError on any failure."""
        engine = load_engine(
            self.policy_path,
            route_actions=self.route_actions(),
            business_station_url=self.settings.business_station_url,
            cache_size=self.settings.cache_size,
            on_error=self._on_error,
            cache_stats=self.metrics.cache_stats,
        )
        if self.tests_path is not None:
            from gateway.policy.testing import run_policy_tests

            report = run_policy_tests(engine, self.tests_path)
            if not report.ok:
                raise PolicyLoadError(report.failure_lines())
        return engine

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    @property
    def revision(self) -> str:
        return self._engine.revision

    def _failed_revision(self) -> str:
        """The revision of the policy file a reload refused (what the security team pushed)."""
        try:
            return revision_of(Path(self.policy_path).read_text(encoding="utf-8"))[:12]
        except (OSError, UnicodeDecodeError):
            return "(unreadable)"

    def ready(self) -> tuple[bool, str]:
        """(last (re)load passed?, message); a failed reload keeps serving the last good policy."""
        return self._ready

    async def reload(self) -> bool:
        """Build, check and test the policy on disk; swap only if everything passed.

        The shadow policy (if any) is reloaded too; its result never changes the answer."""
        ok = await self._reload_active()
        if self.shadow is not None:
            await self.shadow.reload()
        return ok

    async def _reload_active(self) -> bool:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self._engine
            try:
                engine = await asyncio.to_thread(self._build)
            except PolicyLoadError as exc:
                first = exc.problems[0] if exc.problems else "unknown problem"
                more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
                self._last_failure = f"{self._failed_revision()} at {at} UTC: {first}{more}"
                self._ready = (
                    False,
                    f"policy reload failed: {first}{more}; serving last good {current.revision[:12]}",
                )
                for problem in exc.problems:
                    log.error("policy reload failed: %s", problem)
                self.metrics.reloads.labels(result="failure").inc()
                self.metrics.last_reload_ok.set(0)
                return False
            except Exception as exc:  # unexpected: keep serving, report
                self._ready = (False, f"policy reload failed: {type(exc).__name__}: {exc}")
                log.exception("policy reload failed unexpectedly")
                self.metrics.reloads.labels(result="failure").inc()
                self.metrics.last_reload_ok.set(0)
                return False
            if engine.revision != current.revision:
                self._engine = engine  # the atomic swap: one reference assignment
                log.info("policy reloaded: %s -> %s", current.revision[:12], engine.revision[:12])
            loaded = f"policy {self._engine.revision[:12]} loaded"
            # The last failed reload stays visible after a good one (the decision page, /ready).
            if self._last_failure is not None:
                loaded += f"; last failed reload: {self._last_failure}"
            self._ready = (True, loaded)
            self.metrics.reloads.labels(result="success").inc()
            self.metrics.last_reload_ok.set(1)
            self.metrics.revision.info({"revision": self._engine.revision})
            return True

    async def watch(self, interval: float | None = None, *, stop: asyncio.Event | None = None) -> None:
        """Poll the policy file (and tests) and reload when its content changes; run as a task."""
        period = interval if interval is not None else self.settings.watch_interval_seconds
        last = self._fingerprint()
        while stop is None or not stop.is_set():
            await asyncio.sleep(period)
            now = self._fingerprint()
            if now != last:
                last = now
                await self.reload()

    def _fingerprint(self) -> tuple[float, ...]:
        stamps: list[float] = []
        for p in [self.policy_path, *(sorted(self.tests_path.glob("*.y*ml")) if self.tests_path else [])]:
            try:
                stamps.append(p.stat().st_mtime_ns)
            except OSError:
                stamps.append(-1)
        if self.shadow is not None:
            stamps.append(self.shadow.fingerprint())
        return tuple(stamps)

    # ----------------------------------------------------------------- decisions
    async def authorize(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        request_id: str,
    ) -> Decision:
        started = time.perf_counter_ns()
        engine = self._engine  # read once: a concurrent swap never splits this decision
        verdict, facts = await self._verdict(engine, principal, action, resource_type, resource_id)
        decision = Decision(
            outcome=verdict.outcome,
            reason=verdict.reason,
            decision_id=self._decision_ids(),
            policy_revision=engine.revision,
            hint_url=verdict.hint_url,
            visible_parts=verdict.visible_parts,
        )
        elapsed_ns = time.perf_counter_ns() - started
        self.metrics.observe(decision.outcome, decision.reason, elapsed_ns / 1e9)
        if self.decision_log.enabled:
            self.decision_log.record(
                decision_id=decision.decision_id,
                request_id=request_id,
                subject=principal.subject,
                access_level=principal.access_level,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                outcome=decision.outcome,
                reason=decision.reason,
                policy_revision=decision.policy_revision,
                latency_us=round(elapsed_ns / 1000, 1),
            )
        if facts is not None and self.shadow is not None:
            self.shadow.offer(
                ShadowCell(
                    actor=facts[0],
                    action=action,
                    resource=facts[1],
                    active=verdict,
                    active_revision=engine.revision,
                    decision_id=decision.decision_id,
                    request_id=request_id,
                    subject=principal.subject,
                    access_level=principal.access_level,
                    resource_type=resource_type,
                    resource_id=resource_id,
                )
            )
        return decision

    async def _verdict(
        self,
        engine: PolicyEngine,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
    ) -> tuple[Verdict, tuple[Caller, Resource] | None]:
        """The verdict, and the facts it was decided on (None when decided before the policy)."""
        try:
            with self.tracing.span("resolve"):
                actor = await self.resolver.actor(principal)
                resource = await self.resolver.resource(principal, resource_type, resource_id)
        except DirectoryUnavailable:
            return Verdict("unavailable", "directory_unavailable"), None
        except UnknownResourceType:
            log.error("unknown resource type %r for action %r", resource_type, action)
            self.metrics.errors.inc()
            return Verdict("deny", "policy_error"), None
        except Exception:
            log.exception("resolving facts for the policy failed")
            self.metrics.errors.inc()
            return Verdict("deny", "policy_error"), None
        if resource is None:
            return Verdict("not_found", "not_found"), None
        with self.tracing.span("decide"):
            return engine.decide(actor, action, resource), (actor, resource)

    async def explain(
        self, principal: Principal, action: str, resource_type: str, resource_id: str | None
    ) -> Explanation:
        engine = self._engine
        actor = await self.resolver.actor(principal)
        resource = await self.resolver.resource(principal, resource_type, resource_id)
        if resource is None:
            return Explanation(
                Verdict("not_found", "not_found"),
                engine.revision,
                notes=(f"{resource_type} {resource_id!r} does not exist in the directory",),
            )
        return engine.explain(actor, action, resource)

    # -------------------------------------------------------------- registration
    def can_register(self, target: RegistrationTarget, proof_type: str) -> RegistrationVerdict:
        return self._engine.can_register(target, proof_type)

    def close(self) -> None:
        self.decision_log.close()


def _under(base: Path, value: str | Path) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p
