# ruff: noqa: E501  (table-driven cases read best one per line)
"""The Authorizer: decisions through the resolver, decision log, metrics, reload under load."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.directory.base import DirectoryUnavailable
from gateway.directory.memory import MemoryDirectory
from gateway.policy.authorizer import Authorizer
from gateway.policy.decision_log import DecisionLog
from gateway.policy.engine import PolicyLoadError
from gateway.policy.registration import resolve_registration_target
from gateway.policy.testing import demo_world, memory_directory, table_hashers
from gateway.principal import Principal
from gateway.settings import PolicySettings

from .conftest import POLICY, ROUTES, TESTS

NOW = 1_900_000_000.0
ANNA = Principal("acc_anna", access_level="full", auth_methods=frozenset({"password", "totp"}),
                 second_factor_at=NOW - 30, role="customer", bound_customer="1000001")
LUKAS = Principal("acc_lukas", access_level="restricted", auth_methods=frozenset({"sms_tan"}),
                  second_factor_at=NOW - 30, role="line_user", bound_msisdn="436641000040")


def make(tmp_path: Path, *, log: str = "off", registry: CollectorRegistry | None = None,
         directory: object | None = None) -> Authorizer:
    shutil.copy(POLICY, tmp_path / "portal.polar")
    shutil.copytree(TESTS, tmp_path / "tests")
    settings = PolicySettings(path="portal.polar", tests="tests", decision_log=log)
    return Authorizer(
        directory=directory or memory_directory(demo_world()),  # type: ignore[arg-type]
        clock=lambda: NOW,
        settings=settings,
        base_dir=tmp_path,
        registry=registry or CollectorRegistry(),
        routes_path=ROUTES,
    )


async def test_authorize_outcomes(tmp_path: Path) -> None:
    authz = make(tmp_path)
    d = await authz.authorize(ANNA, "view_puk", "line", "436641000001", request_id="r1")
    assert d.outcome == "allow" and d.policy_revision == authz.revision and d.decision_id.startswith("dec_")
    d2 = await authz.authorize(ANNA, "view_puk", "line", "436641000001", request_id="r2")
    assert d2.decision_id != d.decision_id
    assert (await authz.authorize(ANNA, "view_usage", "line", "436641000010", request_id="r")).outcome == "not_found"
    assert (await authz.authorize(ANNA, "view_usage", "line", "000", request_id="r")).outcome == "not_found"
    assert (await authz.authorize(ANNA, "view_usage", "line", None, request_id="r")).outcome == "not_found"
    vpn = await authz.authorize(LUKAS, "view_vpn", "vpn", "vpn-alpenblick-1", request_id="r")
    assert (vpn.outcome, vpn.reason, vpn.hint_url) == ("deny", "vpn_in_business_station", PolicySettings().business_station_url)
    lu = await authz.authorize(LUKAS, "change_tariff", "line", "436641000040", request_id="r")
    assert (lu.outcome, lu.reason) == ("deny", "restricted_session")
    own = await authz.authorize(LUKAS, "manage_own_login", "account", None, request_id="r")
    assert own.outcome == "allow"
    bad = await authz.authorize(ANNA, "view_usage", "spaceship", "1", request_id="r")
    assert (bad.outcome, bad.reason) == ("deny", "policy_error")
    stale = Principal("acc_anna", access_level="full", second_factor_at=NOW - 601, role="customer", bound_customer="1000001")
    assert (await authz.authorize(stale, "view_puk", "line", "436641000001", request_id="r")).outcome == "step_up"


async def test_directory_unavailable_fails_closed(tmp_path: Path) -> None:
    class Down(MemoryDirectory):
        async def line(self, msisdn: str):  # type: ignore[override]
            raise DirectoryUnavailable("down")

    authz = make(tmp_path, directory=Down(demo_world(), hashers=table_hashers()))
    d = await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="r")
    assert (d.outcome, d.reason) == ("unavailable", "directory_unavailable")


async def test_decision_log_records_ids_only(tmp_path: Path) -> None:
    log_file = tmp_path / "decisions.jsonl"
    authz = make(tmp_path, log=str(log_file))
    d = await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="req-1")
    authz.close()
    rec = json.loads(log_file.read_text().splitlines()[0])
    assert set(rec) == {"decision_id", "time", "request_id", "subject", "access_level", "action", "resource_type",
                        "resource_id", "outcome", "reason", "policy_revision", "latency_us"}
    assert rec["decision_id"] == d.decision_id and rec["request_id"] == "req-1" and rec["subject"] == "acc_anna"
    assert rec["policy_revision"] == authz.revision and rec["outcome"] == "allow"
    assert rec["time"].startswith("2030-")
    assert isinstance(rec["latency_us"], float)


def test_decision_log_stdout_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    DecisionLog("stdout", clock=lambda: NOW).record(decision_id="d", password="secret")
    line = capsys.readouterr().out
    assert '"decision_id":"d"' in line and "secret" not in line
    off = DecisionLog("off", clock=lambda: NOW)
    off.record(decision_id="d")
    assert not off.enabled and capsys.readouterr().out == ""


async def test_metrics_on_passed_registry(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    authz = make(tmp_path, registry=reg)
    await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="r")
    assert reg.get_sample_value("portal_policy_decisions_total", {"outcome": "allow", "reason": "allowed"}) == 1
    assert reg.get_sample_value("portal_policy_last_reload_success") == 1
    assert reg.get_sample_value("portal_policy_revision_info", {"revision": authz.revision}) == 1


async def test_can_register_through_authorizer(tmp_path: Path) -> None:
    authz = make(tmp_path)
    directory = authz.directory
    target = await resolve_registration_target(directory, "436641000020")
    assert target is not None
    v = authz.can_register(target, "puk")
    assert (v.allowed, v.role, v.access_level, v.bound_customer, v.bound_msisdn) == (True, "business_member", "full", "1000021", "436641000020")
    company = await resolve_registration_target(directory, "1000020")
    assert company is not None
    v = authz.can_register(company, "kundenkennwort")
    assert (v.allowed, v.reason, v.hint_url) == (False, "company_in_business_station", PolicySettings().business_station_url)
    assert await resolve_registration_target(directory, "nope") is None


def test_startup_with_broken_policy_raises(tmp_path: Path) -> None:
    shutil.copy(POLICY, tmp_path / "portal.polar")
    (tmp_path / "portal.polar").write_text((tmp_path / "portal.polar").read_text().replace("line: Line)", "line: Lin)", 1))
    with pytest.raises(PolicyLoadError):
        Authorizer(directory=memory_directory(demo_world()), clock=lambda: NOW,
                   settings=PolicySettings(path="portal.polar", tests=""), base_dir=tmp_path, routes_path=None)


BROKEN = {
    "syntax": lambda s: s.replace('permission("view_usage", "read");', 'permission("view_usage", "read")'),
    "typo_attribute": lambda s: s.replace("user.holds_line(line);", "user.hodls_line(line);", 1),
    "unknown_class": lambda s: s.replace("line: Line)", "line: Lin)", 1),
    "no_allow": lambda s: s.replace("allow(", "alow("),
    "fails_tables": lambda s: s.replace(
        'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);',
        'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line) or user.uses_line(line);'),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
async def test_reload_broken_policy_under_load_keeps_last_good(tmp_path: Path, kind: str) -> None:
    reg = CollectorRegistry()
    authz = make(tmp_path, registry=reg)
    good = authz.revision
    policy = tmp_path / "portal.polar"
    original = policy.read_text()
    failures: list[str] = []
    outcomes: list[str] = []
    stop = threading.Event()

    async def hammer() -> None:
        while not stop.is_set():
            d = await authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="r")
            outcomes.append(d.outcome)
            if d.outcome != "allow" or d.policy_revision != good:
                failures.append(f"{d.outcome} {d.reason}")
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(hammer()) for _ in range(4)]
    policy.write_text(BROKEN[kind](original))
    assert await authz.reload() is False
    ok, msg = authz.ready()
    assert not ok and "reload failed" in msg and good[:12] in msg
    stop.set()
    await asyncio.gather(*tasks)
    assert failures == [] and len(outcomes) > 0
    assert authz.revision == good
    assert reg.get_sample_value("portal_policy_reloads_total", {"result": "failure"}) == 1
    assert reg.get_sample_value("portal_policy_last_reload_success") == 0
    # fixing the file recovers
    policy.write_text(original + "\n# a comment changes the revision\n")
    assert await authz.reload() is True
    assert authz.ready()[0] and authz.revision != good


async def test_reload_good_policy_swaps_under_concurrent_threads(tmp_path: Path) -> None:
    authz = make(tmp_path)
    policy = tmp_path / "portal.polar"
    original = policy.read_text()
    errors: list[str] = []
    stop = threading.Event()
    count = [0]

    def worker() -> None:
        engine_calls = 0
        while not stop.is_set():
            d = asyncio.run(authz.authorize(ANNA, "view_usage", "line", "436641000001", request_id="t"))
            engine_calls += 1
            if d.outcome != "allow":
                errors.append(d.reason)
        count[0] += engine_calls

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    revisions = set()
    for i in range(5):
        policy.write_text(original + f"\n# revision {i}\n")
        assert await authz.reload() is True
        revisions.add(authz.revision)
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and count[0] > 0
    assert len(revisions) == 5


async def test_watch_reloads_on_change(tmp_path: Path) -> None:
    authz = make(tmp_path)
    first = authz.revision
    stop = asyncio.Event()
    task = asyncio.create_task(authz.watch(0.05, stop=stop))
    await asyncio.sleep(0.1)
    policy = tmp_path / "portal.polar"
    policy.write_text(policy.read_text() + "\n# changed\n")
    for _ in range(100):
        await asyncio.sleep(0.05)
        if authz.revision != first:
            break
    stop.set()
    await task
    assert authz.revision != first
