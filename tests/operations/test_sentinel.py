"""Redis Sentinel: a primary, a replica and three Sentinels (real redis-server processes on
loopback), two gateway replicas on `redis+sentinel://`. The primary is killed under load: every
request is answered 200 (as before) or 503 (no primary known) — never a 500, never a wrong
allow — service returns by itself, and the session made before the failover still works."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import load_settings
from tests.integration.conftest import ROOT, totp_now
from tests.operations.conftest import portal_overrides
from tests.operations.test_replicas import postgres_database
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

ANNA = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}
USAGE = "/api/lines/436641000001/usage"
FOREIGN = "/api/lines/436641000020/usage"
#: Sentinel's failure detection (down-after) plus the election and a margin for this machine.
RECOVERY_BOUND_SECONDS = 20.0


class RedisGroup:
    """Primary, replica and three Sentinels, each a process of this test."""

    def __init__(self, work: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        self.exe, self.work = exe, work
        self.primary, self.replica = free_port(), free_port()
        self.sentinels = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/mymaster/0"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen([self.exe, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.work)

    async def _ping(self, port: int) -> None:
        for _ in range(100):
            try:
                client = aioredis.Redis(port=port, socket_timeout=0.5)
                await client.ping()
                await client.aclose()
                return
            except (OSError, aioredis.RedisError):
                await asyncio.sleep(0.1)
        raise RuntimeError(f"redis on {port} did not start")

    async def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._spawn("primary", ["--port", str(self.primary), *common])
        self._spawn("replica", ["--port", str(self.replica), *common, "--replicaof", "127.0.0.1", str(self.primary)])
        await self._ping(self.primary)
        await self._ping(self.replica)
        for i, port in enumerate(self.sentinels):
            conf = self.work / f"sentinel-{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.work}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.primary} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 4000\n"
                "sentinel parallel-syncs mymaster 1\n"
            )
            self._spawn(f"sentinel-{i}", [str(conf), "--sentinel"])
        for port in self.sentinels:
            await self._ping(port)
        await self._replica_known()

    async def _replica_known(self) -> None:
        """Sentinels learn replicas from the primary's INFO (every 10 s): killing the primary
        before all of them know the replica ends in failover-abort-no-good-slave, not a failover."""
        for port in self.sentinels:
            client = aioredis.Redis(port=port, decode_responses=True)
            try:
                for _ in range(300):
                    replicas = await client.execute_command("SENTINEL", "REPLICAS", "mymaster")
                    flags = [str(r.get("flags", "")) for r in replicas or [] if isinstance(r, dict)]
                    if any(f == "slave" for f in flags):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError(f"sentinel on {port} never saw the replica")
            finally:
                await client.aclose()

    async def replicated(self) -> None:
        """Wait until the replica has everything the primary has (so nothing is lost in failover)."""
        client = aioredis.Redis(port=self.primary)
        try:
            assert await client.execute_command("WAIT", 1, 5000) >= 1
        finally:
            await client.aclose()

    def kill_primary(self) -> None:
        self.procs["primary"].kill()
        self.procs["primary"].wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@asynccontextmanager
async def gateways(tmp_path: Path, store_url: str) -> AsyncIterator[list[tuple[str, str]]]:
    backend_port = free_port()
    prefix = f"pgtest:{uuid.uuid4().hex[:8]}:"
    async with postgres_database() as db_url:
        apps, urls = [], []
        ports = [(free_port(), free_port()) for _ in range(2)]
        for port, ops_port in ports:
            overrides = portal_overrides(tmp_path, port, backend_port)
            overrides.update({
                "database.url": db_url, "store.backend": "redis", "store.url": store_url,
                "store.key_prefix": prefix, "server.data_dir": str(tmp_path), "server.ops_port": ops_port,
            })
            settings = load_settings(ROOT / "config" / "demo.toml", environ={}, overrides=overrides)
            apps.append(build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO(),
                                  serve_ops=True))
        backend = create_backend(jwks_url=f"http://127.0.0.1:{ports[0][0]}/.well-known/jwks.json")
        async with serve_asgi(backend, port_override=backend_port):
            async with serve_asgi(apps[0], port_override=ports[0][0]) as a:
                async with serve_asgi(apps[1], port_override=ports[1][0]) as b:
                    urls = [(a, f"http://127.0.0.1:{ports[0][1]}"), (b, f"http://127.0.0.1:{ports[1][1]}")]
                    yield urls


async def test_primary_killed_under_load(tmp_path: Path) -> None:
    group = RedisGroup(tmp_path)
    try:
        await group.start()
        async with gateways(tmp_path, group.url) as replicas, httpx.AsyncClient(timeout=10) as c:
            (a, a_ops), (b, b_ops) = replicas
            r = await c.post(f"{a}/auth/login/password", json=ANNA)
            pending = {"Authorization": "Bearer " + r.json()["token"]}
            r = await c.post(f"{b}/auth/login/totp", json={"code": totp_now("JBSWY3DPEHPK3PXP")}, headers=pending)
            assert r.status_code == 200, r.text
            anna = {"Authorization": "Bearer " + r.json()["token"]}
            await group.replicated()

            answers: list[tuple[float, str, int]] = []
            stop = asyncio.Event()

            async def load(base: str) -> None:
                while not stop.is_set():
                    own = await c.get(f"{base}{USAGE}", headers=anna)
                    foreign = await c.get(f"{base}{FOREIGN}", headers=anna)
                    answers.append((time.monotonic(), "own", own.status_code))
                    answers.append((time.monotonic(), "foreign", foreign.status_code))
                    await asyncio.sleep(0.01)

            workers = [asyncio.create_task(load(base)) for base in (a, b, a, b)]
            await asyncio.sleep(1.0)
            killed_at = time.monotonic()
            group.kill_primary()
            saw_unavailable = False
            recovered_at = None
            while time.monotonic() - killed_at < RECOVERY_BOUND_SECONDS + 10:
                await asyncio.sleep(0.25)
                recent = [s for t, kind, s in answers if t > time.monotonic() - 1.0 and kind == "own"]
                saw_unavailable = saw_unavailable or any(s == 503 for _, _, s in answers)
                if recovered_at is None and saw_unavailable and recent and all(s == 200 for s in recent):
                    recovered_at = time.monotonic()
                    break
                quiet = time.monotonic() - killed_at > 8
                if recovered_at is None and not saw_unavailable and quiet and recent and all(s == 200 for s in recent):
                    recovered_at = time.monotonic()  # the failover fell between two requests
                    break
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*workers)

            own = {s for _, kind, s in answers if kind == "own"}
            foreign = {s for _, kind, s in answers if kind == "foreign"}
            assert own <= {200, 503}, own
            assert foreign <= {404, 503}, foreign  # never a wrong allow
            timeline = [(round(t - killed_at, 1), kind, st) for t, kind, st in answers if kind == "own"][-40:]
            assert recovered_at is not None, f"service did not return by itself: {timeline}"
            recovery = recovered_at - killed_at
            print(f"\nSentinel failover: answered again {recovery:.1f} s after the primary was killed")
            assert recovery < RECOVERY_BOUND_SECONDS
            # The session made before the failover still works, on both replicas.
            for base in (a, b):
                assert (await c.get(f"{base}{USAGE}", headers=anna)).status_code == 200
            for ops in (a_ops, b_ops):
                ready = (await c.get(f"{ops}/_gateway/ready")).json()
                assert ready["status"] == "ready", ready
    finally:
        group.stop()
