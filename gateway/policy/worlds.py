"""Seeded random directory worlds and principals, for `policy diff` (plain `random.Random`).

The same shapes as the hypothesis strategies of tests/policy/test_invariants.py: customers of
every kind, their contracts (private, business, company, Business Member and invoice-split
under a framework), lines (split contracts with a private and a business part), invoices per
part, VPNs; people hold several relations at once. Principals take every role, bound to real,
wrong or missing ids, full or restricted, with a fresh, stale or no second factor; service
clients too. A seed always gives the same world, so a diff is reproducible.
"""

from __future__ import annotations

import random
from typing import Any

from gateway.principal import Principal

__all__ = ["random_principal", "random_world"]


def random_world(rng: random.Random) -> dict[str, Any]:
    """A world in the world-file shape (`gateway.policy.testing.table_world` builds it)."""
    n = 0

    def nid() -> str:
        nonlocal n
        n += 1
        return str(n)

    data: dict[str, list[dict[str, Any]]] = {k: [] for k in ("customers", "contracts", "lines", "invoices", "vpns")}
    people = [f"p{i}" for i in range(rng.randint(1, 5))]

    def related() -> list[str]:
        who = rng.choice([None, *people])
        return [who] if who else []

    def lines_for(contract: str, customer: str, part: str | None, count: int) -> None:
        for _ in range(count):
            data["lines"].append(
                {"msisdn": "4366" + nid().zfill(8), "contract": contract, "customer": customer,
                 "part": part, "user": rng.choice([None, *people])}
            )

    def invoices_for(contract: str, customer: str, part: str | None) -> None:
        for current in (False, True):
            data["invoices"].append(
                {"number": "RE-" + nid(), "contract": contract, "customer": customer, "part": part, "current": current}
            )

    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["private", "business"])
        c = "1" + nid().zfill(6)
        data["customers"].append({"number": c, "kind": kind, "holders": related(), "authorised": related()})
        ct = "ct-" + nid()
        data["contracts"].append({"id": ct, "customer": c, "kind": kind})
        lines_for(ct, c, None, rng.randint(0, 3))
        invoices_for(ct, c, None)
    for _ in range(rng.randint(0, 2)):
        fw = "1" + nid().zfill(6)
        data["customers"].append({"number": fw, "kind": "framework", "admins": related()})
        ct = "ct-" + nid()
        data["contracts"].append({"id": ct, "customer": fw, "kind": "company"})
        lines_for(ct, fw, None, rng.randint(0, 3))
        invoices_for(ct, fw, None)
        data["vpns"].append({"id": "vpn-" + nid(), "customer": fw})
        for _ in range(rng.randint(0, 2)):
            bm = "1" + nid().zfill(6)
            data["customers"].append({"number": bm, "kind": "business_member", "members": related()})
            ct = "ct-" + nid()
            data["contracts"].append({"id": ct, "customer": bm, "kind": "business_member", "framework": fw})
            lines_for(ct, bm, None, rng.randint(1, 2))
            invoices_for(ct, bm, None)
        for _ in range(rng.randint(0, 2)):
            sp = "1" + nid().zfill(6)
            data["customers"].append({"number": sp, "kind": "split_private", "split_private": related()})
            ct = "ct-" + nid()
            data["contracts"].append({"id": ct, "customer": sp, "kind": "invoice_split", "framework": fw})
            lines_for(ct, sp, "private", 1)
            lines_for(ct, fw, "business", rng.randint(1, 2))
            invoices_for(ct, sp, "private")
            invoices_for(ct, fw, "business")
    return data


_ROLE_OF_KIND = {
    "private": "customer",
    "business": "customer",
    "business_member": "business_member",
    "split_private": "split_private",
    "framework": "customer",
}


def random_principal(rng: random.Random, data: dict[str, Any], now: float) -> Principal:
    """Half bound as registration would bind them, half with arbitrary (odd) bindings."""
    customers = [c["number"] for c in data["customers"]] + ["9999999"]
    msisdns = [ln["msisdn"] for ln in data["lines"]] + ["436600000000"]
    kinds = {c["number"]: c["kind"] for c in data["customers"]}
    sf = rng.choice([None, now - 30, now - 601, now + 5])
    access = rng.choice(["full", "restricted"])
    if rng.random() < 0.5:
        line = rng.choice(data["lines"]) if data["lines"] else None
        if line is None or rng.random() < 0.5:
            c = rng.choice(data["customers"])
            role = _ROLE_OF_KIND[c["kind"]]
            bound_customer, bound_msisdn = c["number"], None
        else:
            own = {"business_member": "business_member", "split_private": "split_private"}
            role = rng.choice(["line_user", own.get(kinds[line["customer"]], "line_user")])
            bound_customer = None if role == "line_user" else line["customer"]
            bound_msisdn = line["msisdn"]
        return Principal(
            subject="acc_a", access_level=access, second_factor_at=sf, role=role,  # type: ignore[arg-type]
            bound_customer=bound_customer, bound_msisdn=bound_msisdn,
        )
    return Principal(
        subject=rng.choice(["acc_a", "acc_b", "client:x"]),
        kind=rng.choice(["account", "account", "account", "service"]),
        access_level=access,  # type: ignore[arg-type]
        second_factor_at=sf,
        role=rng.choice(["customer", "business_member", "split_private", "line_user", None]),
        bound_customer=rng.choice([None, *customers]),
        bound_msisdn=rng.choice([None, *msisdns]),
    )
