"""The auth component's settings sections: ``[auth]``, ``[sessions]``, ``[totp]``,
``[sms]``, ``[regulation]`` and ``[web]``.

Each is a frozen dataclass read with ``settings.section(Cls, "name")``; unknown
keys are errors (see `gateway.settings`). Defaults are the rules of docs/domain.md
section 1, so an empty configuration is the documented behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.settings import Settings

__all__ = [
    "AuthConfig",
    "AuthSettings",
    "RegulationSettings",
    "SessionSettings",
    "SmsSettings",
    "TotpSettings",
    "WebSettings",
    "load_auth_config",
]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    #: Demo mode: a missing totp.encryption_key is generated into the data directory
    #: instead of stopping the start. Never set this in production.
    demo: bool = False
    password_min_length: int = 12
    #: A file with one common password a line; "" = the list shipped with the gateway.
    common_passwords_file: str = ""
    #: Argon2id cost (RFC 9106 "second recommended option" by default).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    #: Argon2 hashes that may run at once (each holds argon2_memory_kib); 0 = two per core.
    argon2_max_concurrent: int = 0
    #: Where a browser goes after login when no (safe) ``next`` was given.
    default_next: str = "/auth/account"
    #: The OIDC login link on the login page; "" hides the button.
    oidc_login_url: str = ""


@dataclass(frozen=True, slots=True)
class SessionSettings:
    idle_timeout_seconds: int = 1800
    absolute_timeout_seconds: int = 43200
    #: A password login waiting for its TOTP code lives this long.
    pending_timeout_seconds: int = 300
    #: last-seen is written back at most this often (saves a store write per request).
    touch_interval_seconds: int = 60


@dataclass(frozen=True, slots=True)
class TotpSettings:
    #: Key that encrypts TOTP secrets at rest (any string of at least 32 characters,
    #: e.g. ``openssl rand -base64 32``); required unless auth.demo = true.
    encryption_key: str = ""
    #: The issuer shown in authenticator apps.
    issuer: str = "Kundenportal"  # the name the portal's pages show (texts "portal")
    digits: int = 6
    period_seconds: int = 30
    #: Steps accepted either side of now (DOMAIN: ±1).
    valid_window: int = 1


@dataclass(frozen=True, slots=True)
class SmsSettings:
    sender: Literal["outbox", "http"] = "outbox"
    #: Outbox file (JSON lines); "" = ``<server.data_dir>/sms-outbox.jsonl``.
    outbox_path: str = ""
    #: For sender = "http": the provider's endpoint and API key.
    url: str = ""
    api_key: str = ""
    timeout_seconds: float = 5.0
    #: Extra attempts after a 5xx or a connection error, with exponential backoff.
    retries: int = 2
    backoff_seconds: float = 0.5
    code_ttl_seconds: int = 300
    max_tries: int = 3
    resend_after_seconds: int = 30
    max_per_number_per_hour: int = 5
    max_per_client_per_hour: int = 30
    #: The portal's country: a national number ("0664 …") gets this code in front.
    country_code: str = "43"


@dataclass(frozen=True, slots=True)
class RegulationSettings:
    #: Failures (wrong proof / password / TOTP / SMS code) within find_time that lock.
    max_failures: int = 5
    find_time_seconds: int = 900
    ban_time_seconds: int = 900
    #: Failures from one client address (across all identifiers) that lock the address.
    client_max_failures: int = 50


@dataclass(frozen=True, slots=True)
class WebSettings:
    default_language: Literal["de", "en"] = "de"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """All auth sections together, as the component uses them."""

    auth: AuthSettings
    sessions: SessionSettings
    totp: TotpSettings
    sms: SmsSettings
    regulation: RegulationSettings
    web: WebSettings


def load_auth_config(settings: Settings) -> AuthConfig:
    return AuthConfig(
        auth=settings.section(AuthSettings, "auth"),
        sessions=settings.section(SessionSettings, "sessions"),
        totp=settings.section(TotpSettings, "totp"),
        sms=settings.section(SmsSettings, "sms"),
        regulation=settings.section(RegulationSettings, "regulation"),
        web=settings.section(WebSettings, "web"),
    )
