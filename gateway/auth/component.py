"""The auth component: builds every auth part once and hands the app what it mounts.

`build_auth(...)` is the only constructor `gateway/app.py` calls. It
reads the ``[auth]``, ``[sessions]``, ``[totp]``, ``[sms]``, ``[regulation]`` and
``[web]`` sections, refuses to start without ``totp.encryption_key`` outside a
demo, and returns an `AuthComponent`:

- ``authenticators``: the session authenticator (``__Host-`` cookie or
  ``Bearer pgs_...``); OIDC appends its JWT bearer authenticator;
- ``routes``: every /auth JSON endpoint and HTML page (and /auth/static);
- ``ready_checks``, ``on_startup``, ``on_shutdown``;
- ``services``: the parts other components build on (OIDC: sessions, accounts,
  registrar, cookies, logins).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from gateway.auth.accounts import Accounts
from gateway.auth.authenticator import SessionAuthenticator
from gateway.auth.base import Authenticator
from gateway.auth.config import AuthConfig, load_auth_config
from gateway.auth.cookies import CookiePolicy
from gateway.auth.crypto import SecretBox, resolve_encryption_key
from gateway.auth.login import Logins
from gateway.auth.notices import CriticalActionNotices, Notices
from gateway.auth.origin import CrossSiteCheck
from gateway.auth.passwords import PasswordHashing, PasswordPolicy, load_common_passwords
from gateway.auth.phone import valid_country_code
from gateway.auth.possession import Possession
from gateway.auth.registration import Registrar, RegistrationPolicy, TargetResolver
from gateway.auth.regulation import Regulator
from gateway.auth.routing import auth_routes
from gateway.auth.services import AuthServices
from gateway.auth.sessions import Sessions
from gateway.auth.sms import SmsCodes
from gateway.auth.sms_senders import HttpSmsSender, OutboxSender, SmsSender
from gateway.auth.totp import Totp
from gateway.database import Database
from gateway.directory.base import Directory
from gateway.policy.registration import resolve_registration_target
from gateway.settings import Settings, SettingsError
from gateway.store.base import Store

__all__ = ["AuthComponent", "build_auth", "build_sms_sender"]

ReadyCheck = Callable[[], Awaitable[tuple[str, bool, str]]]


@dataclass
class AuthComponent:
    authenticators: list[Authenticator]
    routes: list[BaseRoute]
    ready_checks: list[ReadyCheck]
    on_startup: list[Callable[[], Awaitable[None]]]
    on_shutdown: list[Callable[[], Awaitable[None]]]
    services: AuthServices | None = None
    #: The outbox file of the embedded SMS sender (``make demo`` prints it), else None.
    sms_outbox: Path | None = None
    extra_authenticators: list[Authenticator] = field(default_factory=list)
    #: Run by the proxy after the backend answered (scope, status): critical-action notices.
    after_forward: list[Callable[[Mapping[str, object], int], Awaitable[None]]] = field(default_factory=list)


def build_sms_sender(settings: Settings, config: AuthConfig, clock: Callable[[], float]) -> SmsSender:
    sms = config.sms
    if sms.sender == "http":
        if not sms.url or not sms.api_key:
            raise SettingsError(
                f'{settings.source}: sms.url and sms.api_key are required when sms.sender = "http"'
            )
        return HttpSmsSender(
            sms.url,
            sms.api_key,
            timeout=sms.timeout_seconds,
            retries=sms.retries,
            backoff=sms.backoff_seconds,
        )
    path = (
        settings.path(sms.outbox_path)
        if sms.outbox_path
        else settings.path(settings.server.data_dir) / ("sms-outbox.jsonl")
    )
    return OutboxSender(path, clock=clock)


def build_auth(
    settings: Settings,
    *,
    store: Store,
    db: Database,
    directory: Directory,
    authorizer: RegistrationPolicy,
    clock: Callable[[], float],
    registry: CollectorRegistry,
    resolve: TargetResolver = resolve_registration_target,
    sms_sender: SmsSender | None = None,
) -> AuthComponent:
    """Build the auth component; raises SettingsError for a bad or incomplete configuration."""
    config = load_auth_config(settings)
    a = config.auth
    if not valid_country_code(config.sms.country_code):
        raise SettingsError(f"{settings.source}: sms.country_code must be 1 to 3 digits without '+' or '00'")
    if a.password_min_length < 12:
        raise SettingsError(f"{settings.source}: auth.password_min_length must be at least 12 (docs/domain.md)")
    key = resolve_encryption_key(
        config.totp.encryption_key,
        demo=a.demo,
        data_dir=settings.path(settings.server.data_dir),
        source=settings.source,
    )
    try:
        common = load_common_passwords(
            settings.path(a.common_passwords_file) if a.common_passwords_file else None
        )
    except OSError as exc:
        raise SettingsError(f"{settings.source}: auth.common_passwords_file: {exc}") from None
    sender = sms_sender or build_sms_sender(settings, config, clock)
    regulator = Regulator(store, config.regulation, registry)
    accounts = Accounts(db, box=SecretBox(key), clock=clock)
    sessions = Sessions(store, config.sessions, clock)
    hashing = PasswordHashing(
        time_cost=a.argon2_time_cost,
        memory_kib=a.argon2_memory_kib,
        parallelism=a.argon2_parallelism,
        max_concurrent=a.argon2_max_concurrent,
    )
    password_policy = PasswordPolicy(common=common, min_length=a.password_min_length)
    totp = Totp(store, config.totp, clock)
    sms = SmsCodes(
        store=store,
        sender=sender,
        directory=directory,
        regulator=regulator,
        settings=config.sms,
        registry=registry,
        clock=clock,
    )
    notices = Notices(sender=sender, directory=directory, registry=registry)
    possession = Possession(sms=sms, directory=directory, store=store, ttl_seconds=config.sms.code_ttl_seconds)
    registrar = Registrar(
        notices=notices,
        directory=directory,
        policy=authorizer,
        resolve=resolve,
        accounts=accounts,
        hashing=hashing,
        password_policy=password_policy,
        sms=sms,
        regulator=regulator,
    )
    logins = Logins(
        accounts=accounts,
        sessions=sessions,
        hashing=hashing,
        totp=totp,
        sms=sms,
        regulator=regulator,
        directory=directory,
        clock=clock,
        possession=possession,
        notices=notices,
        registry=registry,
    )
    cookies = CookiePolicy(
        secure=settings.server.cookie_secure, session_max_age=config.sessions.absolute_timeout_seconds
    )
    public = settings.server.public_url.rstrip("/")
    services = AuthServices(
        config=config,
        accounts=accounts,
        sessions=sessions,
        hashing=hashing,
        password_policy=password_policy,
        totp=totp,
        sms=sms,
        regulator=regulator,
        registrar=registrar,
        logins=logins,
        directory=directory,
        cookies=cookies,
        public_origin=public,
        clock=clock,
        cross_site=CrossSiteCheck(public, [cookies.session_name]),
    )

    async def store_ready() -> tuple[str, bool, str]:
        try:
            await store.ping()
        except Exception as exc:
            return ("auth_store", False, f"session store does not answer: {type(exc).__name__}")
        return ("auth_store", True, "ok")

    async def close_sender() -> None:
        await sender.close()

    return AuthComponent(
        authenticators=[SessionAuthenticator(sessions, cookies.session_name, public_origin=public)],
        routes=auth_routes(services),
        ready_checks=[store_ready],
        on_startup=[],
        on_shutdown=[close_sender],
        services=services,
        sms_outbox=sender.path if isinstance(sender, OutboxSender) else None,
        after_forward=[CriticalActionNotices(notices, directory, lambda: _permissions(authorizer))],
    )


def _permissions(policy: object) -> Mapping[str, str]:
    """The policy's declared action kinds (empty for a policy stand-in without an engine)."""
    permissions = getattr(getattr(policy, "engine", None), "permissions", None)
    return permissions if isinstance(permissions, Mapping) else {}
