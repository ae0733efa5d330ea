"""Stage 5: ask the policy, and turn its decision into go / our error tree.

Only this module maps decision outcomes to errors (Pomerium's check_response):
allow → forward; not_found → 404 (invariant 2: existence never leaks);
step_up → 401 with the RFC 9470 challenge (invariant 5); deny → 403 with the
reason (VPN denials carry the My Business Station pointer); unavailable → 503.
"""

from __future__ import annotations

from typing import Protocol

from gateway.errors import Forbidden, NotFound, ServiceUnavailable, StepUpRequired
from gateway.metrics import GatewayMetrics
from gateway.policy.decision import Decision
from gateway.principal import Principal

__all__ = ["AuthorizationStage", "AuthorizerLike"]


class AuthorizerLike(Protocol):
    async def authorize(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        *,
        request_id: str,
    ) -> Decision: ...


class AuthorizationStage:
    id = "authorize"

    def __init__(self, authorizer: AuthorizerLike, metrics: GatewayMetrics | None = None) -> None:
        self.authorizer = authorizer
        self.metrics = metrics

    async def decide(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str | None,
        request_id: str,
    ) -> Decision:
        try:
            decision = await self.authorizer.authorize(
                principal, action, resource_type, resource_id, request_id=request_id
            )
        except Exception as exc:  # the policy layer already fails closed; this is the last net
            if self.metrics is not None:
                self.metrics.count_decision(principal.role or "-", action, "unavailable")
            raise ServiceUnavailable("policy_unavailable", "the policy could not decide") from exc
        if self.metrics is not None:
            self.metrics.count_decision(principal.role or "-", action, str(decision.outcome))
        return decision

    @staticmethod
    def enforce(decision: Decision) -> None:
        outcome = decision.outcome
        if outcome == "allow":
            return
        if outcome == "not_found":
            raise NotFound("not_found")
        if outcome == "step_up":
            raise StepUpRequired(decision.reason or "step_up_required")
        if outcome == "unavailable":
            raise ServiceUnavailable(decision.reason or "dependency_unavailable")
        raise Forbidden(decision.reason or "forbidden")
