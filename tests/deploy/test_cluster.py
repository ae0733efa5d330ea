"""The production topology as real processes (deploy/cluster.py, `make cluster`): nginx in
front of two gateway replicas sharing Redis, PostgreSQL and the key directory. One replica is
killed under load: every request is answered by the other and no session is lost."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx

from deploy.cluster import Cluster
from tests.integration.conftest import totp_now

ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}
USAGE = "/api/lines/436641000001/usage"


async def _login(c: httpx.AsyncClient) -> dict[str, str]:
    r = await c.post("/auth/login/password", json=ANNA)
    assert r.status_code == 200, r.text
    pending = {"Authorization": "Bearer " + r.json()["token"]}
    r = await c.post("/auth/login/totp", json={"code": totp_now("JBSWY3DPEHPK3PXP")}, headers=pending)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


async def _sms_login(c: httpx.AsyncClient, outbox: Path, msisdn: str) -> dict[str, str]:
    assert (await c.post("/auth/sms/send", json={"msisdn": msisdn})).status_code == 202
    texts = [json.loads(x)["text"] for x in outbox.read_text().splitlines() if json.loads(x)["to"] == msisdn]
    code = re.search(r"\b(\d{6})\b", texts[-1])
    assert code is not None
    r = await c.post("/auth/sms/verify", json={"msisdn": msisdn, "code": code.group(1)})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


async def test_a_replica_killed_under_load_loses_no_request_and_no_session(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster")
    await asyncio.to_thread(cluster.start)
    try:
        async with httpx.AsyncClient(base_url=cluster.url, timeout=20) as c:
            session = await _login(c)
            # A browser session too: cookie-authenticated, on the other replica's keys as well.
            assert (await c.get(USAGE, headers=session)).status_code == 200
            statuses: list[int] = []
            stop = asyncio.Event()

            async def load() -> None:
                while not stop.is_set():
                    r = await c.get(USAGE, headers=session)
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        # The backend verified the assertion: the key is one both replicas share.
                        assert r.json()["msisdn"] == "436641000001"

            workers = [asyncio.create_task(load()) for _ in range(8)]
            while len(statuses) < 200:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(cluster.kill, "a")
            before_kill = len(statuses)
            while len(statuses) < before_kill + 400:
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*workers)
            assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
            # The session made before the kill still works, and a new login works, on the survivor.
            assert (await c.get(USAGE, headers=session)).status_code == 200
            lukas = await _sms_login(c, cluster.work_dir / "sms-outbox.jsonl", "436641000040")
            assert (await c.get("/api/lines/436641000040/usage", headers=lukas)).status_code == 200
            r = await c.get(f"http://127.0.0.1:{cluster.replicas[1].ops_port}/_gateway/ready")
            assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    finally:
        await asyncio.to_thread(cluster.stop)
