"""deploy/grafana/portal-gateway.json loads as a Grafana dashboard and every query it runs names
metrics (and labels) that a running gateway really exports — a renamed metric breaks this test,
not the operator's dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.integration.conftest import Portal
from tests.integration.test_roles import login_anna

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "portal-gateway.json"
_METRIC = re.compile(r"\b(portal_[a-z_]+)")
_GROUPING = re.compile(r"by \(([^)]*)\)")


def _queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["panels"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


async def test_every_dashboard_query_names_an_exported_metric(portal: Portal) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
        await c.get("/api/lines/436641000001/usage", headers=h)
        await c.get("/api/lines/436641000020/usage", headers=h)  # a denial (404)
        await c.get("/api/lines/%2e%2e/usage")  # refused before routing
        await c.post("/auth/login/password", json={"login": "anna.huber@example.at", "password": "wrong-password-1"})
    async with portal.ops_client() as o:
        exported = (await o.get("/_gateway/metrics")).text
    families = {line.split()[2] for line in exported.splitlines() if line.startswith("# TYPE ")}
    samples = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in exported.splitlines() if line and line[0] != "#"}
    known = families | samples | {"portal_gateway_workers"}  # added when several workers merge
    for expr in _queries():
        for metric in _METRIC.findall(expr):
            assert metric in known, f"{metric} (in {expr!r}) is not exported"
        with_samples = [m for m in _METRIC.findall(expr) if any(x.startswith(m) for x in samples)]
        if not with_samples:
            continue  # a labelled counter nothing has counted yet shows no labels to check
        for grouping in _GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in grouping.split(","))):
                if label == "le":
                    continue
                assert re.search(rf'\b{label}="', exported), f"label {label} (in {expr!r}) is not exported"
