"""SIGHUP / reload: a broken policy on disk never replaces the last good one; readiness
reports the failure (status "degraded", still 200: the last good policy serves, and a bad
push must not take every replica out of the load balancer) until a good policy loads."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

from tests.integration.conftest import ROOT
from tests.integration.test_roles import login_anna
from tests.operations.conftest import running_portal


async def test_broken_policy_keeps_the_last_good_one(tmp_path: Path) -> None:
    policy = tmp_path / "portal.polar"
    shutil.copy(ROOT / "policies" / "portal.polar", policy)
    good = policy.read_text()
    async with (
        running_portal(tmp_path, **{"policy.path": str(policy)}) as run,
        run.portal.client() as c,
        run.portal.ops_client() as o,
    ):
        h = await login_anna(c)
        assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200
        revision = (await o.get("/_gateway/ready")).json()["checks"]["policy"]["message"]

        # 1. Not Polar at all.
        policy.write_text(good + "\nthis is not polar (\n")
        await run.app.gateway.reload()
        assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200
        assert (await c.get("/api/lines/436641000020/usage", headers=h)).status_code == 404
        r = await o.get("/_gateway/ready")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "degraded"
        assert r.json()["checks"]["policy"]["ok"] is False
        assert r.json()["checks"]["policy"]["degraded"] is True
        assert r.json()["checks"]["policy"]["message"] != revision
        metrics = (await o.get("/_gateway/metrics")).text
        assert 'portal_gateway_dependency_ready{dependency="policy"} 0.0' in metrics

        # 2. A rule that lets everyone see every line: refused (check or policy tests).
        policy.write_text(good + '\nhas_permission(_actor: Actor, "view_usage", _line: Line);\n')
        await run.app.gateway.reload()
        assert (await c.get("/api/lines/436641000020/usage", headers=h)).status_code == 404
        assert (await o.get("/_gateway/ready")).json()["status"] == "degraded"

        # 3. Fixed: ready again, same decisions.
        policy.write_text(good)
        await run.app.gateway.reload()
        r = await o.get("/_gateway/ready")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready"
        assert r.json()["checks"]["policy"]["ok"] is True
        assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200


async def test_sighup_reloads(tmp_path: Path) -> None:
    """The lifespan installs a SIGHUP handler that runs the same reload hooks."""
    policy = tmp_path / "portal.polar"
    shutil.copy(ROOT / "policies" / "portal.polar", policy)
    good = policy.read_text()
    async with (
        running_portal(tmp_path, **{"policy.path": str(policy)}) as run,
        run.portal.client(),
        run.portal.ops_client() as o,
    ):
        # Never send SIGHUP to the test process without a handler: it would end it.
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)
        policy.write_text(good + "\nthis is not polar (\n")
        os.kill(os.getpid(), signal.SIGHUP)
        r = await o.get("/_gateway/ready")
        for _ in range(50):
            if r.json()["status"] == "degraded":
                break
            await asyncio.sleep(0.1)
            r = await o.get("/_gateway/ready")
        assert r.json()["status"] == "degraded" and r.json()["checks"]["policy"]["ok"] is False
        policy.write_text(good)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(50):
            r = await o.get("/_gateway/ready")
            if r.json()["status"] == "ready":
                break
            await asyncio.sleep(0.1)
        assert r.json()["status"] == "ready", r.text


async def test_reload_under_load_fails_no_request(tmp_path: Path) -> None:
    """Swaps are atomic: requests running while the policy is rebuilt all get a decision."""
    policy = tmp_path / "portal.polar"
    shutil.copy(ROOT / "policies" / "portal.polar", policy)
    good = policy.read_text()
    async with (
        running_portal(tmp_path, **{"policy.path": str(policy)}) as run,
        run.portal.client() as c,
        run.portal.ops_client() as o,
    ):
        h = await login_anna(c)
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                r = await c.get("/api/lines/436641000001/usage", headers=h)
                statuses.append(r.status_code)
                r = await c.get("/api/lines/436641000020/usage", headers=h)
                statuses.append(r.status_code + 1000)  # a 404 here is the right answer

        workers = [asyncio.create_task(load()) for _ in range(6)]
        revisions = set()
        for i in range(8):
            # A new revision each time (a comment changes the sha256), some broken in between.
            policy.write_text(good + f"\n# revision {i}\n" + ("this is not polar (\n" if i % 3 == 2 else ""))
            await run.app.gateway.reload()
            revisions.add((await o.get("/_gateway/ready")).json()["checks"]["policy"]["message"])
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*workers)
        assert len(revisions) >= 5
        assert statuses and set(statuses) == {200, 1404}, sorted(set(statuses))
