"""Builds the swappable components from the settings, for `gateway.app.build_app`.

Order matters and is spelled out here once: store → database → directory →
policy (decides on directory facts) → auth (registration asks the policy) →
OIDC (links accounts and makes sessions through auth's services). Everything
that needs the event loop (migrations, the demo seed, the policy watcher) runs
in the startup hooks, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from gateway.auth.base import Authenticator
from gateway.auth.component import build_auth
from gateway.auth.oidc.component import build_oidc
from gateway.auth.oidc.config import OidcSettings
from gateway.auth.seed import seed_demo_accounts
from gateway.auth.web import message_lookup
from gateway.database import Database
from gateway.directory.base import Directory
from gateway.directory.caching import build_directory_cache
from gateway.directory.http import HttpDirectory
from gateway.directory.importer import import_world
from gateway.directory.sql import SqlDirectory
from gateway.directory.world import load_world
from gateway.middleware.authorize import AuthorizerLike
from gateway.policy.authorizer import Authorizer
from gateway.settings import Settings
from gateway.store import build_store
from gateway.tracing import Tracing

__all__ = ["Components", "Hook", "ReadyCheck", "build_components"]

#: A readiness check answers (dependency name, ok, message); ok is True, False (the
#: gateway cannot serve: 503) or "degraded" (it serves, but something needs a look).
ReadyCheck = Callable[[], Awaitable[tuple[str, "bool | Literal['degraded']", str]]]
Hook = Callable[[], Awaitable[None]]


log = logging.getLogger("gateway")


@dataclass
class Components:
    """The swappable parts built from the settings (or injected by tests)."""

    authenticators: list[Authenticator] = field(default_factory=list)
    authorizer: AuthorizerLike | None = None
    control_routes: list[BaseRoute] = field(default_factory=list)
    ready_checks: list[ReadyCheck] = field(default_factory=list)
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    #: Called on SIGHUP (policy reload and the like).
    on_reload: list[Hook] = field(default_factory=list)
    message_lookup: Callable[[str, str], str | None] | None = None
    #: Run by the proxy after the backend answered (scope, status), e.g. critical-action notices.
    after_forward: list[Callable[[Mapping[str, object], int], Awaitable[None]]] = field(default_factory=list)


def build_components(
    settings: Settings, *, registry: CollectorRegistry, clock: Callable[[], float], tracing: Tracing | None = None
) -> Components:
    store = build_store(settings, clock=clock)
    db = Database.from_settings(settings.database, base_dir=settings.base_dir)
    directory: Directory
    sql_directory: SqlDirectory | None = None
    if settings.directory.backend == "http":
        directory = HttpDirectory(
            settings.directory.url,
            timeout_seconds=settings.directory.timeout_seconds,
            cache_ttl_seconds=settings.directory.cache_ttl_seconds,
        )
    else:
        directory = sql_directory = SqlDirectory(db)
    directory_cache = build_directory_cache(settings, sql_directory, clock=time.monotonic, registry=registry)
    if directory_cache is not None:
        directory = directory_cache.directory
    authorizer = Authorizer.from_settings(settings, directory=directory, clock=clock, registry=registry,
                                          tracing=tracing)
    auth = build_auth(
        settings, store=store, db=db, directory=directory, authorizer=authorizer, clock=clock, registry=registry
    )
    assert auth.services is not None
    oidc_settings = settings.section(OidcSettings, "oidc")
    oidc = (
        build_oidc(settings, auth=auth.services, store=store, db=db, clock=clock)
        if oidc_settings.providers
        else None
    )

    async def migrate_and_seed() -> None:
        await db.migrate()
        if sql_directory is not None and settings.directory.seed_file and await sql_directory.is_empty():
            path = settings.path(settings.directory.seed_file)
            summary = await import_world(db, load_world(path), hashers=sql_directory.hashers)
            log.info("directory seeded from %s: %s", path, summary)
        if auth.services is not None and auth.services.config.auth.demo:
            created = await seed_demo_accounts(db, services=auth.services)
            if created:
                log.info("demo accounts created: %s", ", ".join(created))

    watcher: dict[str, asyncio.Task[None]] = {}

    async def start_policy_watch() -> None:
        if authorizer.shadow is not None:
            authorizer.shadow.start()
        if settings.policy.watch:
            watcher["task"] = asyncio.create_task(authorizer.watch())

    async def stop_policy_watch() -> None:
        task = watcher.pop("task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if authorizer.shadow is not None:
            await authorizer.shadow.stop()
        authorizer.close()

    async def reload_policy() -> None:
        await authorizer.reload()

    async def policy_ready() -> tuple[str, bool | Literal["degraded"], str]:
        # A failed reload keeps the last good policy serving: degraded, not unready,
        # or one bad push would take every replica out of the load balancer.
        ok, message = authorizer.ready()
        return "policy", True if ok else "degraded", message

    async def shadow_ready() -> tuple[str, bool | Literal["degraded"], str]:
        # A broken candidate policy is ignored (never evaluated, never answering): degraded at most.
        assert authorizer.shadow is not None
        ok, message = authorizer.shadow.ready()
        return "policy_shadow", True if ok else "degraded", message

    async def directory_ready() -> tuple[str, bool, str]:
        try:
            await directory.ping()
        except Exception as exc:
            return "directory", False, f"directory does not answer: {type(exc).__name__}"
        return "directory", True, "ok"

    async def start_directory_cache() -> None:
        if directory_cache is not None:
            await directory_cache.watcher.start()

    async def stop_directory_cache() -> None:
        if directory_cache is not None:
            await directory_cache.watcher.stop()

    async def directory_cache_ready() -> tuple[str, bool | Literal["degraded"], str]:
        assert directory_cache is not None
        return directory_cache.ready()

    async def database_ready() -> tuple[str, bool, str]:
        try:
            await db.ping()
        except Exception as exc:
            return "database", False, f"database does not answer: {type(exc).__name__}"
        return "database", True, db.safe_url

    async def close_all() -> None:
        await directory.close()
        await store.close()
        await db.close()

    authenticators = [*(oidc.authenticators if oidc else []), *auth.authenticators]
    return Components(
        authenticators=authenticators,
        authorizer=authorizer,
        control_routes=[*(oidc.routes if oidc else []), *auth.routes],
        ready_checks=[
            policy_ready,
            *([shadow_ready] if authorizer.shadow is not None else []),
            directory_ready,
            *([directory_cache_ready] if directory_cache is not None else []),
            database_ready,
            *auth.ready_checks,
            *(oidc.ready_checks if oidc else []),
        ],
        on_startup=[
            migrate_and_seed, start_directory_cache, *auth.on_startup, *(oidc.on_startup if oidc else []),
            start_policy_watch,
        ],
        on_shutdown=[
            stop_policy_watch, *auth.on_shutdown, *(oidc.on_shutdown if oidc else []), stop_directory_cache, close_all
        ],
        on_reload=[reload_policy],
        after_forward=auth.after_forward,
        message_lookup=message_lookup,
    )
