"""A shadow policy under load through the real gateway (real sockets, real policy, demo backend).

The candidate refuses holders the itemized bill. Every answer stays what the gateway without a
shadow answers; every itemized-bill decision is counted as a disagreement and written to the
decision log under its decision id; a broken candidate is reported and ignored.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from demo.backend import create_app as create_backend
from gateway.app import build_app
from tests.integration.conftest import ROOT, Portal, portal_settings
from tests.integration.test_roles import login_anna
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

HOLDER_ITEMIZED = 'allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);'
CANDIDATE_TABLE = """
actors:
  anna: {role: customer, bound_customer: "1000001", second_factor: fresh}
cases:
  - actor: anna
    resource: line:436641000001
    expect: {view_usage: allow, view_itemized_bill: deny}
"""
#: (method, path, expected status): allowed, refused by the candidate only, foreign (404).
LOAD = [
    ("GET", "/api/lines/436641000001/usage", 200),
    ("GET", "/api/lines/436641000001/itemized-bill", 200),
    ("GET", "/api/lines/436641000020/usage", 404),
    ("GET", "/api/customers/1000001/profile", 200),
]
ROUNDS = 40


def candidate(tmp_path: Path, *, broken: bool = False) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = (ROOT / "policies" / "portal.polar").read_text(encoding="utf-8")
    assert HOLDER_ITEMIZED in source
    narrowed = HOLDER_ITEMIZED[:-1] + " and not user.full;"  # holders in a full session lose it
    source = source.replace(HOLDER_ITEMIZED, "user.hodls_line(line);" if broken else narrowed)
    (tmp_path / "candidate.polar").write_text(source, encoding="utf-8")
    tables = tmp_path / "candidate-tests"
    tables.mkdir(exist_ok=True)
    (tables / "candidate.yaml").write_text(CANDIDATE_TABLE, encoding="utf-8")
    return {"policy.shadow": str(tmp_path / "candidate.polar"), "policy.shadow_tests": str(tables)}


@asynccontextmanager
async def gateway(tmp_path: Path, **extra: Any) -> AsyncIterator[Portal]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    gw_port, backend_port = free_port(), free_port()
    settings = portal_settings(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}", **extra)
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO(), serve_ops=True)
    backend = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal")
    async with serve_asgi(backend, port_override=backend_port) as backend_url:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield Portal(url, backend_url, tmp_path / "sms-outbox.jsonl", io.StringIO(), tmp_path,
                         f"http://127.0.0.1:{settings.server.ops_port}")


async def run_load(portal: Portal) -> list[tuple[str, int, str]]:
    """ROUNDS x LOAD, 16 at a time: (path, status, decision id) per request."""
    async with portal.client(limits=httpx.Limits(max_connections=16)) as c:
        h = await login_anna(c)
        sem = asyncio.Semaphore(16)

        async def one(method: str, path: str) -> tuple[str, int, str]:
            async with sem:
                r = await c.request(method, path, headers=h)
                return path, r.status_code, r.headers.get("x-decision-id", "")

        return await asyncio.gather(*(one(m, p) for _ in range(ROUNDS) for m, p, _ in LOAD))


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


async def metrics(portal: Portal) -> str:
    async with portal.ops_client() as c:
        return (await c.get("/_gateway/metrics")).text


async def test_shadow_under_load_never_changes_an_answer_and_counts_every_disagreement(tmp_path: Path) -> None:
    async with gateway(tmp_path / "plain") as plain:
        without = await run_load(plain)
    async with gateway(tmp_path / "shadow", **candidate(tmp_path / "shadow")) as shadowed:
        async with shadowed.ops_client() as c:
            ready = (await c.get("/_gateway/ready")).json()
        assert ready["checks"]["policy_shadow"]["ok"] is True, ready
        assert ready["checks"]["policy_shadow"]["message"].startswith("shadow policy ")
        with_shadow = await run_load(shadowed)
        # the answers: exactly what the gateway without a shadow answers, and what the route says
        assert [(p, s) for p, s, _ in with_shadow] == [(p, s) for p, s, _ in without]
        assert [s for _, s, _ in with_shadow] == [s for _ in range(ROUNDS) for _, _, s in LOAD]
        decided = [d for _, _, d in with_shadow if d]
        itemized = {d for p, s, d in with_shadow if p.endswith("itemized-bill")}
        # wait (bounded) until the background task has evaluated every decided request
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 60
        while True:
            text = await metrics(shadowed)
            agree = sum(v for _, v in samples(text, "portal_policy_shadow_agreements_total"))
            disagree = samples(text, "portal_policy_shadow_disagreements_total")
            if agree + sum(v for _, v in disagree) >= len(decided) or loop.time() > give_up:
                break
            await asyncio.sleep(0.05)
        assert samples(text, "portal_policy_shadow_dropped_total") == []
        assert [lbl["action"] for lbl, _ in disagree] == ["view_itemized_bill"]
        labels, count = disagree[0]
        assert count == len(itemized) == ROUNDS
        assert (labels["active_outcome"], labels["shadow_outcome"]) == ("allow", "deny")
        assert agree == len(decided) - ROUNDS
        records = [json.loads(x) for x in (shadowed.data_dir / "decisions.jsonl").read_text().splitlines()]
        shadow_records = [r for r in records if "shadow_outcome" in r]
        assert {r["decision_id"] for r in shadow_records} == itemized
        rec = shadow_records[0]
        assert (rec["outcome"], rec["shadow_outcome"], rec["action"]) == ("allow", "deny", "view_itemized_bill")
        assert rec["shadow_revision"] != rec["policy_revision"] and len(rec["shadow_revision"]) == 64


async def test_a_broken_shadow_policy_is_reported_and_ignored(tmp_path: Path) -> None:
    async with gateway(tmp_path, **candidate(tmp_path, broken=True)) as portal:
        async with portal.ops_client() as c:
            r = await c.get("/_gateway/ready")
        assert r.status_code == 200, r.text  # never unready for a candidate
        check = r.json()["checks"]["policy_shadow"]
        assert r.json()["status"] == "degraded" and check["degraded"] is True and check["ok"] is False
        assert check["message"].startswith("shadow policy ignored: ") and "candidate.polar" in check["message"]
        assert r.json()["checks"]["policy"]["ok"] is True  # the active policy serves on
        results = await run_load(portal)
        assert [s for _, s, _ in results] == [s for _ in range(ROUNDS) for _, _, s in LOAD]
        text = await metrics(portal)
        assert samples(text, "portal_policy_shadow_loaded") == [({}, 0.0)]
        assert samples(text, "portal_policy_shadow_agreements_total") == []
        records = (portal.data_dir / "decisions.jsonl").read_text()
        assert "shadow_outcome" not in records
