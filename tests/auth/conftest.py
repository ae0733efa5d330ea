"""Shared fixtures for the auth tests: a movable clock, stores (memory + real Redis)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.auth.component import AuthComponent, build_auth
from gateway.auth.services import AuthServices
from gateway.database import Database
from gateway.directory.memory import MemoryDirectory
from gateway.directory.proofs import ProofHasher, ProofHashers
from gateway.directory.world import load_world
from gateway.policy.authorizer import Authorizer
from gateway.settings import PolicySettings, ServerSettings, Settings
from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore

from .helpers import Clock

REDIS_URL = os.environ.get("PORTAL_GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _redis() -> RedisStore:
    store = RedisStore.from_url(REDIS_URL, prefix=f"pgtest:{uuid.uuid4().hex}:")
    try:
        await store.ping()
    except Exception:  # pragma: no cover - the machine has Redis; CI starts it
        pytest.skip("redis not reachable at " + REDIS_URL)
    return store


async def _drop(store: RedisStore) -> None:
    client = store._client
    async for key in client.scan_iter(match=store._prefix + "*"):
        await client.delete(key)
    await store.close()


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    store = await _redis()
    yield store
    await _drop(store)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[MemoryStore | RedisStore]:
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    rs = await _redis()
    yield rs
    await _drop(rs)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database("sqlite+aiosqlite:///:memory:")
    await database.migrate()
    yield database
    await database.close()


# ---------------------------------------------------------------- the auth app under test
REPO = Path(__file__).resolve().parents[2]
TOTP_KEY = "test-totp-encryption-key-0123456789abcdef"


@pytest.fixture(scope="session")
def demo_directory() -> MemoryDirectory:
    cheap = ProofHasher(time_cost=1, memory_cost=1024, parallelism=1)
    world = load_world(REPO / "demo" / "directory.yaml")
    return MemoryDirectory(world, hashers=ProofHashers(kundenkennwort=cheap, puk=cheap))


@pytest.fixture(scope="session")
def authorizer(demo_directory: MemoryDirectory) -> Authorizer:
    return Authorizer(
        directory=demo_directory,
        clock=lambda: 1_790_000_000.0,
        settings=PolicySettings(path="policies/portal.polar", tests="policies/tests", decision_log="off"),
        base_dir=REPO,
        routes_path=REPO / "config" / "routes.toml",
        run_tests=False,
    )


def auth_settings(tmp_path: Path, **extra: dict[str, Any]) -> Settings:
    sections: dict[str, Any] = {
        "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
        "totp": {"encryption_key": TOTP_KEY},
        "sms": {"outbox_path": str(tmp_path / "sms-outbox.jsonl")},
    }
    for name, values in extra.items():
        sections.setdefault(name, {}).update(values)
    return Settings(
        server=ServerSettings(public_url="https://testserver", data_dir=str(tmp_path)),
        extra=sections,
        base_dir=str(REPO),
    )


@dataclass
class AuthEnv:
    client: httpx.AsyncClient
    auth: AuthComponent
    clock: Clock
    store: Store
    outbox: Path
    registry: CollectorRegistry
    db: Database

    @property
    def services(self) -> AuthServices:
        assert self.auth.services is not None
        return self.auth.services

    def last_sms(self, to: str) -> str:
        """The 6-digit code of the newest outbox message to `to`."""
        lines = [json.loads(x) for x in self.outbox.read_text().splitlines()]
        texts = [m["text"] for m in lines if m["to"] == to]
        assert texts, f"no SMS to {to}"
        match = re.search(r"\b(\d{6})\b", texts[-1])
        assert match
        return match.group(1)

    def sms_count(self, to: str) -> int:
        if not self.outbox.exists():
            return 0
        return sum(1 for x in self.outbox.read_text().splitlines() if json.loads(x)["to"] == to)

    def totp_now(self, secret: str, offset_steps: int = 0) -> str:
        return self.services.totp.code_at(secret, self.clock() + 30 * offset_steps)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def make_app(component: AuthComponent) -> Starlette:
    async def protected(request: Any) -> JSONResponse:
        """Stands in for the gateway's authentication stage over a backend route."""
        from gateway.auth.base import Credentials
        from gateway.errors import GatewayError

        creds = Credentials(
            authorization=request.headers.get("authorization"),
            cookies=request.cookies,
            client_ip="127.0.0.1",
            method=request.method,
            path=request.url.path,
        )
        try:
            for authenticator in component.authenticators:
                principal = await authenticator.authenticate(creds)
                if principal is not None:
                    return JSONResponse(
                        {
                            "subject": principal.subject,
                            "access_level": principal.access_level,
                            "methods": sorted(principal.auth_methods),
                        }
                    )
        except GatewayError as exc:
            return JSONResponse({"error": exc.reason}, status_code=401)
        return JSONResponse({"error": "anonymous"}, status_code=401)

    return Starlette(routes=[*component.routes, Route("/api/whoami", protected)])


@pytest.fixture
async def env(
    tmp_path: Path, clock: Clock, db: Database, demo_directory: MemoryDirectory, authorizer: Authorizer
) -> AsyncIterator[AuthEnv]:
    store = MemoryStore(clock=clock)
    registry = CollectorRegistry()
    component = build_auth(
        auth_settings(tmp_path),
        store=store,
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=registry,
    )
    transport = httpx.ASGITransport(app=make_app(component), client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield AuthEnv(client, component, clock, store, tmp_path / "sms-outbox.jsonl", registry, db)
    for close in component.on_shutdown:
        await close()
