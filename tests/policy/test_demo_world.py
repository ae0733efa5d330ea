"""The built-in demo world of the decision tables is the one in demo/directory.yaml."""

from __future__ import annotations

import yaml

from gateway.policy.testing import World, demo_world

from .conftest import ROOT


def test_builtin_demo_world_matches_demo_directory_yaml() -> None:
    data = yaml.safe_load((ROOT / "demo" / "directory.yaml").read_text(encoding="utf-8"))
    shipped = World().add(data, "demo/directory.yaml")
    mine = demo_world()
    assert mine.customers.keys() == shipped.customers.keys()
    for number, c in shipped.customers.items():
        assert (mine.customers[number].kind, mine.customers[number].number) == (c.kind, c.number)
    assert mine.contracts == shipped.contracts
    assert mine.lines == shipped.lines
    assert {k: (v.contract_id, v.customer_number, v.part, v.current) for k, v in mine.invoices.items()} == {
        k: (v.contract_id, v.customer_number, v.part, v.current) for k, v in shipped.invoices.items()
    }
    assert mine.vpns == shipped.vpns
    assert {p: {k: v for k, v in rel.items() if v} for p, rel in mine.relations.items()} == {
        p: {k: v for k, v in rel.items() if v} for p, rel in shipped.relations.items()
    }
