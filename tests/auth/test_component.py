"""build_auth: refuses to start without the TOTP key, readiness, store selection."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gateway.auth.component import build_auth
from gateway.settings import ServerSettings, Settings, SettingsError, StoreSettings
from gateway.store import MemoryStore, RedisStore, build_store

from .conftest import REPO, auth_settings


def test_no_totp_key_outside_demo_refuses_start(tmp_path, clock, db, demo_directory, authorizer) -> None:
    settings = Settings(server=ServerSettings(data_dir=str(tmp_path)), base_dir=str(REPO), source="gw.toml")
    with pytest.raises(SettingsError, match=r"gw.toml: totp.encryption_key is required"):
        build_auth(
            settings,
            store=MemoryStore(clock=clock),
            db=db,
            directory=demo_directory,
            authorizer=authorizer,
            clock=clock,
            registry=CollectorRegistry(),
        )


def test_demo_generates_a_key(tmp_path, clock, db, demo_directory, authorizer) -> None:
    settings = Settings(
        server=ServerSettings(data_dir=str(tmp_path)), base_dir=str(REPO), extra={"auth": {"demo": True}}
    )
    component = build_auth(
        settings,
        store=MemoryStore(clock=clock),
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    assert (tmp_path / "totp-encryption.key").stat().st_mode & 0o077 == 0
    assert component.sms_outbox == tmp_path / "sms-outbox.jsonl"


def test_weak_password_minimum_is_refused(tmp_path, clock, db, demo_directory, authorizer) -> None:
    with pytest.raises(SettingsError, match="password_min_length"):
        build_auth(
            auth_settings(tmp_path, auth={"password_min_length": 8}),
            store=MemoryStore(clock=clock),
            db=db,
            directory=demo_directory,
            authorizer=authorizer,
            clock=clock,
            registry=CollectorRegistry(),
        )


async def test_ready_check_reports_the_store(env) -> None:
    assert [await check() for check in env.auth.ready_checks] == [("auth_store", True, "ok")]


async def test_ready_check_fails_when_redis_is_down(tmp_path, clock, db, demo_directory, authorizer) -> None:
    down = RedisStore.from_url("redis://127.0.0.1:1/0", timeout=0.3)
    component = build_auth(
        auth_settings(tmp_path),
        store=down,
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    name, ok, _ = await component.ready_checks[0]()
    assert (name, ok) == ("auth_store", False)
    await down.close()


def test_build_store_follows_settings(clock) -> None:
    assert isinstance(build_store(Settings(), clock=clock), MemoryStore)
    assert isinstance(build_store(Settings(store=StoreSettings(backend="redis")), clock=clock), RedisStore)


async def test_store_down_fails_closed_with_503(tmp_path, clock, db, demo_directory, authorizer) -> None:
    import httpx

    from gateway.auth.base import Credentials
    from gateway.errors import ServiceUnavailable

    from .conftest import make_app

    down = RedisStore.from_url("redis://127.0.0.1:1/0", timeout=0.3)
    component = build_auth(
        auth_settings(tmp_path),
        store=down,
        db=db,
        directory=demo_directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    transport = httpx.ASGITransport(app=make_app(component))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        r = await client.post("/auth/login/password", json={"login": "a@example.at", "password": "x" * 12})
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
        r = await client.get("/auth/login")  # a page that needs no store still renders
        assert r.status_code == 200
    creds = Credentials(
        authorization="Bearer pgs_" + "A" * 43, cookies={}, client_ip="1.2.3.4", method="GET", path="/api/x"
    )
    with pytest.raises(ServiceUnavailable):
        await component.authenticators[0].authenticate(creds)
    await down.close()
