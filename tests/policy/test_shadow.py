# ruff: noqa: E501  (table-driven cases read best one per line)
"""The shadow policy beside the Authorizer: sampling, the bounded queue, a broken candidate, reload, promotion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from gateway.policy.authorizer import Authorizer
from gateway.policy.testing import demo_world, memory_directory
from gateway.principal import Principal
from gateway.settings import PolicySettings

from .conftest import POLICY, ROUTES

NOW = 1_900_000_000.0
ANNA = Principal("acc_anna", access_level="full", auth_methods=frozenset({"password", "totp"}),
                 second_factor_at=NOW - 30, role="customer", bound_customer="1000001")
HOLDER_ITEMIZED = 'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);'
TABLE = """
actors:
  anna: {role: customer, bound_customer: "1000001", second_factor: fresh}
cases:
  - actor: anna
    resource: line:436641000001
    expect: {view_usage: allow}
"""


def make(tmp_path: Path, *, broken: bool = False, **kw: Any) -> tuple[Authorizer, CollectorRegistry]:
    shutil.copy(POLICY, tmp_path / "portal.polar")
    source = POLICY.read_text(encoding="utf-8")
    narrowed = HOLDER_ITEMIZED[:-1] + " and not user.full;"
    (tmp_path / "candidate.polar").write_text(
        source.replace(HOLDER_ITEMIZED, "user.hodls_line(line);" if broken else narrowed), encoding="utf-8"
    )
    (tmp_path / "tables").mkdir(exist_ok=True)
    (tmp_path / "tables" / "t.yaml").write_text(TABLE, encoding="utf-8")
    settings = PolicySettings(path="portal.polar", tests="tables", decision_log=str(tmp_path / "d.jsonl"),
                              shadow="candidate.polar", **kw)
    registry = CollectorRegistry()
    authz = Authorizer(directory=memory_directory(demo_world()), clock=lambda: NOW, settings=settings,
                       base_dir=tmp_path, registry=registry, routes_path=ROUTES)
    return authz, registry


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_disagreement_counted_logged_and_answer_unchanged(tmp_path: Path) -> None:
    authz, registry = make(tmp_path)
    assert authz.shadow is not None and authz.shadow.ready()[0]
    authz.shadow.start()
    d = await authz.authorize(ANNA, "view_itemized_bill", "line", "436641000001", request_id="r1")
    u = await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="r2")
    assert d.outcome == "allow" and u.outcome == "allow"  # the active policy answers
    await authz.shadow.drain()
    await authz.shadow.stop()
    assert metric(registry, "portal_policy_shadow_agreements_total", action="view_usage") == 1
    assert metric(registry, "portal_policy_shadow_disagreements_total", action="view_itemized_bill",
                  active_outcome="allow", shadow_outcome="deny", active_reason=d.reason,
                  shadow_reason=authz.shadow.engine.decide(  # type: ignore[union-attr]
                      await authz.resolver.actor(ANNA), "view_itemized_bill",
                      await authz.resolver.resource(ANNA, "line", "436641000001"),  # type: ignore[arg-type]
                  ).reason) == 1
    records = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [r["decision_id"] for r in records if "shadow_outcome" in r] == [d.decision_id]
    assert "shadow_outcome" not in records[0]  # the decision's own record is unchanged
    authz.close()


async def test_sample_rate_zero_gives_the_shadow_nothing(tmp_path: Path) -> None:
    authz, registry = make(tmp_path, shadow_sample_rate=0.0)
    assert authz.shadow is not None
    authz.shadow.start()
    for _ in range(20):
        await authz.authorize(ANNA, "view_itemized_bill", "line", "436641000001", request_id="r")
    await authz.shadow.drain()
    await authz.shadow.stop()
    assert b"portal_policy_shadow_disagreements_total{" not in generate_latest(registry)
    authz.close()


async def test_a_full_queue_drops_and_counts_never_waits(tmp_path: Path) -> None:
    authz, registry = make(tmp_path, shadow_queue_size=2)
    assert authz.shadow is not None  # task not started: nothing leaves the queue
    for _ in range(5):
        assert (await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="r")).outcome == "allow"
    assert metric(registry, "portal_policy_shadow_dropped_total", why="queue_full") == 3
    assert metric(registry, "portal_policy_shadow_queue") == 2
    authz.close()


async def test_broken_candidate_ignored_then_fixed_by_reload_then_promoted(tmp_path: Path) -> None:
    authz, registry = make(tmp_path, broken=True)
    assert authz.shadow is not None
    ok, message = authz.shadow.ready()
    assert not ok and message.startswith("shadow policy ignored: ") and "hodls_line" in message
    assert metric(registry, "portal_policy_shadow_loaded") == 0
    assert authz.ready()[0]  # the active policy is not affected
    await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="r")
    assert metric(registry, "portal_policy_shadow_queue") == 0  # nothing offered to a broken shadow
    # the security team fixes the candidate; the normal reload picks it up
    source = POLICY.read_text(encoding="utf-8")
    (tmp_path / "candidate.polar").write_text(source.replace(HOLDER_ITEMIZED, HOLDER_ITEMIZED[:-1] + " and not user.full;"))
    assert await authz.reload()
    assert authz.shadow.ready()[0] and metric(registry, "portal_policy_shadow_loaded") == 1
    candidate = authz.shadow.engine
    assert candidate is not None and candidate.revision != authz.revision
    # promoting = the active path pointing at the candidate (here: the file copied over)
    shutil.copy(tmp_path / "candidate.polar", tmp_path / "portal.polar")
    assert await authz.reload()
    assert authz.revision == candidate.revision
    authz.close()


def test_shadow_settings_are_checked_at_start_naming_the_key() -> None:
    import pytest

    from gateway.settings import SettingsError, load_settings

    root = POLICY.parents[1]
    for key, value in (("policy.shadow_sample_rate", 1.5), ("policy.shadow_max_per_second", 0),
                       ("policy.shadow_queue_size", 0)):
        with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
            load_settings(root / "config" / "demo.toml", environ={}, overrides={key: value})
