# ruff: noqa: B023, E501  (lambdas are measured inside their loop iteration; the table reads best wide)
"""Policy decision latency: oso uncached, oso cached, cedarpy with the same rules.

    .venv/bin/python bench/policy_bench.py [--iterations N] [--cpu]

Each engine decides the same line requests (holder reads usage; holder with a fresh
second factor lifts a barring (critical); the same without a fresh factor (step-up); a
Benutzer-Login tries a tariff change (deny); a stranger reads usage (not found)) for a
customer with 1 and with 1,000 lines. The "queries" column counts the oso queries one
uncached decision runs. Facts are resolved once
(frozen model values, as the gateway's resolver produces them); the "gateway" rows
add the resolver over an in-memory directory and the Authorizer around it (decision
log off). cedarpy gets the entity graph of the whole customer parsed once
(`Entities.from_json_str`) and the policy set parsed once: its best case.
Prints p50 / p99 in microseconds: wall time, or with --cpu the thread's CPU time (on a
shared, loaded machine the CPU time is the steadier figure; it leaves out preemption).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.directory.memory import MemoryDirectory  # noqa: E402
from gateway.directory.world import World, parse_world  # noqa: E402
from gateway.policy.authorizer import Authorizer  # noqa: E402
from gateway.policy.engine import load_engine  # noqa: E402
from gateway.policy.model import Actor, Line  # noqa: E402
from gateway.policy.testing import run_sync  # noqa: E402
from gateway.principal import Principal  # noqa: E402
from gateway.settings import PolicySettings  # noqa: E402

CUSTOMER = "2000001"
NOW = 1_800_000_000.0

CEDAR_POLICY = """
// The line rules of policies/portal.polar, transcribed.
permit(principal, action in [Action::"view_usage", Action::"view_tariff", Action::"set_barring", Action::"block_sim"], resource is Line)
  when { principal.customers.contains(resource.customer) || principal.own_lines.contains(resource.msisdn) };
permit(principal, action == Action::"view_itemized_bill", resource is Line)
  when { principal.customers.contains(resource.customer) };
permit(principal, action in [Action::"change_tariff", Action::"book_addon", Action::"cancel_addon"], resource is Line)
  when { principal.full && principal.customers.contains(resource.customer) };
permit(principal, action in [Action::"lift_barring", Action::"unblock_sim", Action::"order_sim_swap", Action::"view_puk"], resource is Line)
  when { principal.full && principal.step_up_fresh && principal.customers.contains(resource.customer) };
"""


def world(lines: int) -> World:
    return parse_world(
        {
            "customers": [{"number": CUSTOMER, "name": "Bench", "kind": "business"}],
            "contracts": [{"id": "ct-bench", "customer": CUSTOMER, "kind": "business"}],
            "lines": [
                {"msisdn": f"43669{i:07d}", "contract": "ct-bench", "customer": CUSTOMER} for i in range(lines)
            ],
        },
        "bench world",
    )


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


CLOCK = time.perf_counter_ns


def count_queries(engine: object, fn: Callable[[], object]) -> int:
    """How many oso queries one call of `fn` runs."""
    oso = engine.oso  # type: ignore[attr-defined]
    original = oso.query_rule
    calls = 0

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    oso.query_rule = counting
    try:
        fn()
    finally:
        del oso.query_rule
    return calls


def measure(fn: Callable[[], object], n: int) -> tuple[float, float]:
    for _ in range(min(2000, n)):
        fn()
    samples = []
    clock = CLOCK
    for _ in range(n):
        t = clock()
        fn()
        samples.append((clock() - t) / 1000)
    return statistics.median(samples), percentile(samples, 0.99)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--cpu", action="store_true", help="measure thread CPU time instead of wall time")
    args = ap.parse_args()
    n = args.iterations
    if args.cpu:
        global CLOCK
        CLOCK = time.thread_time_ns
    engine = load_engine(ROOT / "policies" / "portal.polar")
    try:
        import cedarpy
    except ImportError:  # pragma: no cover
        cedarpy = None

    rows: list[tuple[str, str, int, float, float, str]] = []
    for size in (1, 1000):
        w = world(size)
        target_msisdn = f"43669{size - 1:07d}"  # the last line: no advantage from ordering
        line = Line(target_msisdn, "ct-bench", CUSTOMER)
        holder = Actor("acc_h", role="customer", access_level="full", customers=frozenset({CUSTOMER}))
        holder_2fa = Actor("acc_h", role="customer", access_level="full", step_up_fresh=True, customers=frozenset({CUSTOMER}))
        line_user = Actor("acc_l", role="line_user", own_lines=frozenset({target_msisdn}))
        stranger = Actor("acc_s", role="customer", access_level="full", customers=frozenset({"9999999"}))
        cases = [
            ("view_usage (allow)", holder, "view_usage"),
            ("lift_barring, 2FA (allow)", holder_2fa, "lift_barring"),
            ("lift_barring, no 2FA (step_up)", holder, "lift_barring"),
            ("change_tariff, Benutzer-Login (deny)", line_user, "change_tariff"),
            ("view_usage, stranger (not_found)", stranger, "view_usage"),
        ]
        for label, actor, action in cases:
            queries = count_queries(engine, lambda a=actor, act=action: engine.decide_uncached(a, act, line))
            p50, p99 = measure(lambda a=actor, act=action: engine.decide_uncached(a, act, line), n // 4)
            rows.append(("oso uncached", label, size, p50, p99, str(queries)))
            p50, p99 = measure(lambda a=actor, act=action: engine.decide(a, act, line), n)
            rows.append(("oso cached", label, size, p50, p99, "0"))

        # the gateway path: resolver (in-memory directory) + cached decision + Decision value
        authz = Authorizer(
            directory=MemoryDirectory(w),
            clock=lambda: NOW,
            settings=PolicySettings(path=str(ROOT / "policies/portal.polar"), tests="", decision_log="off"),
            routes_path=ROOT / "config/routes.toml",
        )
        principal = Principal("acc_h", access_level="full", role="customer", bound_customer=CUSTOMER)
        p50, p99 = measure(
            lambda: run_sync(authz.authorize(principal, "view_usage", "line", target_msisdn, request_id="b")), n
        )
        rows.append(("gateway authorize, cached", "view_usage (allow)", size, p50, p99, "0"))
        uncached = Authorizer(
            directory=MemoryDirectory(w),
            clock=lambda: NOW,
            settings=PolicySettings(
                path=str(ROOT / "policies/portal.polar"), tests="", decision_log="off", cache_size=0
            ),
            routes_path=ROOT / "config/routes.toml",
        )
        for label, who, action in (
            ("view_usage (allow)", principal, "view_usage"),
            ("change_tariff, Benutzer-Login (deny)",
             Principal("acc_l", access_level="restricted", role="line_user", bound_msisdn=target_msisdn),
             "change_tariff"),
        ):
            p50, p99 = measure(
                lambda p=who, act=action: run_sync(uncached.authorize(p, act, "line", target_msisdn, request_id="b")),
                n // 4,
            )
            rows.append(("gateway authorize, uncached", label, size, p50, p99, ""))
        asyncio.run(asyncio.sleep(0))

        if cedarpy is not None:
            entities = [
                {
                    "uid": {"__entity": {"type": "Line", "id": ln.msisdn}},
                    "attrs": {"msisdn": ln.msisdn, "customer": ln.customer_number},
                    "parents": [],
                }
                for ln in (x.record for x in w.lines)
            ]
            for uid, a in (("acc_h", holder_2fa), ("acc_l", line_user)):
                entities.append(
                    {
                        "uid": {"__entity": {"type": "User", "id": uid}},
                        "attrs": {
                            "customers": sorted(a.customers),
                            "own_lines": sorted(a.own_lines),
                            "full": a.full,
                            "step_up_fresh": a.step_up_fresh,
                        },
                        "parents": [],
                    }
                )
            ents = cedarpy.Entities.from_json_str(json.dumps(entities))
            policies = cedarpy.PolicySet.from_str(CEDAR_POLICY) if hasattr(cedarpy, "PolicySet") else CEDAR_POLICY
            for label, uid, action, want in (
                ("view_usage (allow)", "acc_h", "view_usage", True),
                ("lift_barring, 2FA (allow)", "acc_h", "lift_barring", True),
                ("change_tariff, Benutzer-Login (deny)", "acc_l", "change_tariff", False),
            ):
                req = {
                    "principal": f'User::"{uid}"',
                    "action": f'Action::"{action}"',
                    "resource": f'Line::"{target_msisdn}"',
                    "context": {},
                }
                got = cedarpy.is_authorized(req, policies, ents).allowed
                assert got == want, (label, got)
                p50, p99 = measure(lambda r=req: cedarpy.is_authorized(r, policies, ents), n // 4)
                rows.append(("cedarpy (parsed once)", label, size, p50, p99, ""))

    kind = "CPU" if args.cpu else "wall"
    print(f"{'engine':<28} {'request':<38} {'lines':>5} {'queries':>7} {kind + ' p50 µs':>12} {kind + ' p99 µs':>12}")
    print("-" * 108)
    for eng, label, size, p50, p99, queries in rows:
        print(f"{eng:<28} {label:<38} {size:>5} {queries:>7} {p50:>12.1f} {p99:>12.1f}")


if __name__ == "__main__":
    main()
