"""Typed settings: one TOML file plus ``PORTAL_GATEWAY_*`` environment overrides.

Every section is a frozen dataclass; `load_settings` validates the whole file at
start, and every error names the file and the dotted key, so an operator can
fix it without reading code. Unknown keys are errors (a typo must not silently
fall back to a default). Environment overrides use ``__`` between levels:
``PORTAL_GATEWAY_SERVER__PORT=9090`` sets ``[server] port``; values are read as
TOML literals when they parse (numbers, booleans, arrays) and as strings
otherwise.

Components own their section types (`gateway.auth.config`, ...); this module
only knows how to read and check dataclasses.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = [
    "DatabaseSettings",
    "ForwardAuthSettings",
    "PolicySettings",
    "RoutesSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "SigningSettings",
    "StoreSettings",
    "UpstreamSettings",
    "load_section",
    "load_settings",
]

T = TypeVar("T")
ENV_PREFIX = "PORTAL_GATEWAY_"


class SettingsError(Exception):
    """A configuration problem; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: The public origin of the gateway (used for redirects, cookies and OIDC).
    public_url: str = "http://127.0.0.1:8080"
    #: Peers (IP or CIDR) whose X-Forwarded-For / Forwarded headers are believed.
    trusted_proxies: list[str] = field(default_factory=list)
    #: Largest request body forwarded to a backend; larger → 413.
    max_body_bytes: int = 10 * 1024 * 1024
    #: Where keys, the SQLite file and the SMS outbox live.
    data_dir: str = "var"
    access_log: bool = True
    #: Secure cookies are the default; only a plain-HTTP demo turns this off.
    cookie_secure: bool = True
    #: Longest accepted request path (bytes, percent-encoded form).
    max_path_bytes: int = 2048
    graceful_shutdown_seconds: int = 10
    #: The operations listener (readiness details, metrics): loopback by default; 0 = none.
    ops_host: str = "127.0.0.1"
    ops_port: int = 9090


@dataclass(frozen=True, slots=True)
class StoreSettings:
    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "pg:"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    #: SQLAlchemy async URL; the embedded default is a SQLite file in data_dir.
    url: str = "sqlite+aiosqlite:///var/portal.db"
    #: Connections each worker keeps for directory reads; a read waits for a free one
    #: rather than opening (and then closing) one more.
    reader_pool_size: int = 8


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    backend: Literal["sql", "http"] = "sql"
    #: For backend = "http": the base URL of the directory service.
    url: str = ""
    cache_ttl_seconds: float = 30.0
    timeout_seconds: float = 2.0
    #: Loaded into an empty SQL directory at start (the demo world); "" = none.
    seed_file: str = ""
    #: backend = "sql": facts kept in memory per worker (LRU); 0 = no cache.
    cache_entries: int = 100_000
    #: How long a "no such id" answer is kept (a flood of unknown ids asks once per id).
    negative_ttl_seconds: float = 2.0
    #: How often each worker reads the directory revision (PostgreSQL also pushes
    #: changes with NOTIFY); cached facts are never older than twice this.
    revision_poll_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class PolicySettings:
    path: str = "policies/portal.polar"
    tests: str = "policies/tests"
    #: Watch the policy file and reload on change (SIGHUP always reloads).
    watch: bool = True
    watch_interval_seconds: float = 1.0
    #: "stdout", "off", or a file path for the decision log.
    decision_log: str = "stdout"
    cache_size: int = 100_000
    #: Where VPN and fleet administration live (the pointer in VPN denials).
    business_station_url: str = "https://business-station.example.at/"
    #: A candidate policy evaluated beside the active one on live requests, never answering
    #: ("" = none; docs/policies.md, shadow policy). Promote by pointing `path` at it.
    shadow: str = ""
    #: The candidate's decision tables ("" = the active policy's `tests`): a candidate that
    #: changes decisions comes with the tables that say so.
    shadow_tests: str = ""
    #: Share of decisions also given to the shadow policy (0..1).
    shadow_sample_rate: float = 1.0
    #: CPU bound: shadow evaluations per second at most (more are dropped and counted).
    shadow_max_per_second: float = 200.0
    #: Decisions waiting for the shadow policy at most (more are dropped and counted).
    shadow_queue_size: int = 1000


@dataclass(frozen=True, slots=True)
class RoutesSettings:
    path: str = "config/routes.toml"


@dataclass(frozen=True, slots=True)
class SigningSettings:
    issuer: str = "portal-gateway"
    algorithm: Literal["EdDSA", "ES256"] = "EdDSA"
    assertion_ttl_seconds: int = 60
    #: A new signing key is made when the current one is older than this.
    rotate_after_days: int = 30
    #: "request": one assertion per forwarded request (htm/htu/rid/jti, single use);
    #: "session": one per (session, upstream), reused for at most half its TTL
    #: (docs/configuration.md, what a backend can no longer check).
    binding: Literal["request", "session"] = "request"
    #: Session-bound assertions kept for reuse per worker (least recently used leave first).
    session_cache_size: int = 10_000


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    url: str
    connect_timeout_seconds: float = 2.0
    #: Longest wait for the answer's head once the request is sent.
    read_timeout_seconds: float = 30.0
    #: Connections to this backend at most (at least 1).
    pool_size: int = 100
    keepalive_seconds: float = 30.0
    #: Requests that may wait for a free connection; more → 503 upstream_busy.
    max_pending_requests: int = 1000
    #: Longest wait in that queue → 503 upstream_pool_timeout.
    acquire_timeout_seconds: float = 5.0
    #: Longest wait for the backend to read what we send → 504 upstream_write_timeout.
    write_timeout_seconds: float = 30.0
    #: Longest gap between body bytes of an answer → the answer is cut off.
    stream_idle_timeout_seconds: float = 30.0
    #: Longest wait for the next bytes of the client's request body → 408 client_body_timeout.
    body_idle_timeout_seconds: float = 10.0
    #: Whole exchange (request body, answer head and body) → 504 upstream_deadline.
    request_timeout_seconds: float = 300.0
    #: Largest answer head (status line and headers) → 502 upstream_header_too_large.
    max_response_header_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class ForwardAuthSettings:
    """``[forward_auth]``: decisions for an edge proxy (docs/forward-auth.md)."""

    #: Serve /_gateway/authz for nginx auth_request, Caddy forward_auth, Envoy ext_authz.
    enabled: bool = False
    #: Edge proxies (IP or CIDR) that may ask; empty = server.trusted_proxies.
    trusted_peers: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration; `source` is the file it came from (for messages)."""

    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    routes: RoutesSettings = field(default_factory=RoutesSettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    upstreams: dict[str, UpstreamSettings] = field(default_factory=dict)
    forward_auth: ForwardAuthSettings = field(default_factory=ForwardAuthSettings)
    #: Component sections (auth, sms, oidc, ...) as raw tables; each component
    #: parses its own with `load_section` so the types live next to the code.
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"
    base_dir: str = "."

    def path(self, value: str) -> Path:
        """A configured path, relative to the directory the gateway runs in."""
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def section(self, cls: type[T], name: str) -> T:
        """Parse a component's section (e.g. ``[auth]``) into its dataclass."""
        return load_section(cls, self.extra.get(name, {}), name, self.source)


_KNOWN = {f.name for f in dataclasses.fields(Settings)} - {"extra", "source", "base_dir"}
#: Top-level tables that components own; anything else is a typo.
COMPONENT_SECTIONS = frozenset({"auth", "sms", "oidc", "totp", "regulation", "sessions", "web", "tracing"})


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _EnvText(str):
    """An environment override: the variable's text, its TOML reading and its name.

    A string setting takes the text as it is (``KEY_PREFIX=123`` is "123", not 123);
    every other type takes the TOML reading. Errors name the variable, since the
    file is not where the bad value is.
    """

    parsed: Any
    variable: str


def _env_text(raw: str, variable: str) -> _EnvText:
    text = _EnvText(raw)
    text.parsed = _env_value(raw)
    text.variable = variable
    return text


def _convert(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    where = f"{source}: {key}"
    if isinstance(value, _EnvText):
        where = f"{where} (from environment {value.variable})"
        if origin not in (typing.Union, types.UnionType):
            if tp is str:
                return value.parsed if isinstance(value.parsed, str) else str.__str__(value)
            value = value.parsed
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise SettingsError(f"{where}: must be one of {allowed}, got {_describe(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, source)
            except SettingsError as exc:
                errors.append(str(exc))
        raise SettingsError(errors[0] if errors else f"{where}: invalid value")
    if origin is list:
        if not isinstance(value, list):
            raise SettingsError(f"{where}: expected an array, got {_describe(value)}")
        return [_convert(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: expected a table, got {_describe(value)}")
        return {k: _convert(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return load_section(tp, value, key, source)
    if tp is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{where}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{where}: expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SettingsError(f"{where}: expected a string, got {_describe(value)}")
        return value
    raise SettingsError(f"{where}: unsupported setting type {tp!r}")  # pragma: no cover


def load_section(cls: type[T], data: Any, key: str, source: str) -> T:
    """Build dataclass `cls` from a TOML table, rejecting unknown keys and bad types."""
    if not isinstance(data, Mapping):
        raise SettingsError(f"{source}: [{key}] must be a table, got {_describe(data)}")
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise SettingsError(f"{source}: unknown key {key}.{unknown[0]} (known keys: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{key}.{name}", source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SettingsError(f"{source}: missing required key {key}.{name}")
    return typing.cast(T, cls(**kwargs))


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(parts) < 2:
            raise SettingsError(
                f"environment {name}: expected PORTAL_GATEWAY_<SECTION>__<KEY>, e.g. PORTAL_GATEWAY_SERVER__PORT"
            )
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"environment {name}: {part} is not a table")
            node = child
        node[parts[-1]] = _env_text(raw, name)


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate the configuration; raise SettingsError on any problem."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get(ENV_PREFIX + "CONFIG")
    data: dict[str, Any] = {}
    source = "<defaults>"
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError(f"{source}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{source}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise SettingsError(f"{source}: cannot read: {exc.strerror}") from None
    _apply_env(data, environ)
    for name, value in (overrides or {}).items():
        section, _, key = name.partition(".")
        data.setdefault(section, {})[key] = value

    unknown = sorted(set(data) - _KNOWN - COMPONENT_SECTIONS)
    if unknown:
        raise SettingsError(
            f"{source}: unknown section [{unknown[0]}] "
            f"(known: {', '.join(sorted(_KNOWN | COMPONENT_SECTIONS))})"
        )
    hints = typing.get_type_hints(Settings)
    kwargs: dict[str, Any] = {
        name: _convert(hints[name], data[name], name, source) for name in _KNOWN if name in data
    }
    extra = {name: data[name] for name in COMPONENT_SECTIONS if name in data}
    settings = Settings(**kwargs, extra=extra, source=source, base_dir=str(base_dir))
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    src = s.source
    if not 0 < s.server.port < 65536:
        raise SettingsError(f"{src}: server.port must be between 1 and 65535, got {s.server.port}")
    if not 0 <= s.server.ops_port < 65536:
        raise SettingsError(f"{src}: server.ops_port must be between 0 (off) and 65535, got {s.server.ops_port}")
    if s.server.ops_port and s.server.ops_port == s.server.port and s.server.ops_host == s.server.host:
        raise SettingsError(f"{src}: server.ops_port must differ from server.port ({s.server.port})")
    if s.server.workers < 1:
        raise SettingsError(f"{src}: server.workers must be at least 1, got {s.server.workers}")
    if s.server.workers > 1 and s.store.backend == "memory":
        raise SettingsError(
            f"{src}: server.workers = {s.server.workers} needs a shared store: "
            'set store.backend = "redis" (memory state cannot be shared between workers)'
        )
    if s.server.max_body_bytes < 0:
        raise SettingsError(f"{src}: server.max_body_bytes must not be negative")
    if s.signing.session_cache_size < 1:
        raise SettingsError(f"{src}: signing.session_cache_size must be at least 1, got {s.signing.session_cache_size}")
    if not 0.0 <= s.policy.shadow_sample_rate <= 1.0:
        raise SettingsError(
            f"{src}: policy.shadow_sample_rate must be between 0 and 1, got {s.policy.shadow_sample_rate}"
        )
    if s.policy.shadow_max_per_second <= 0:
        raise SettingsError(
            f"{src}: policy.shadow_max_per_second must be positive, got {s.policy.shadow_max_per_second}"
        )
    if s.policy.shadow_queue_size < 1:
        raise SettingsError(f"{src}: policy.shadow_queue_size must be at least 1, got {s.policy.shadow_queue_size}")
    if s.policy.cache_size < 0:
        raise SettingsError(
            f"{src}: policy.cache_size must not be negative (0 = no decision cache), got {s.policy.cache_size}"
        )
    import ipaddress

    for i, cidr in enumerate(s.server.trusted_proxies):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(
                f"{src}: server.trusted_proxies[{i}]: not an IP address or network: {cidr!r}"
            ) from None
    for i, cidr in enumerate(s.forward_auth.trusted_peers):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(
                f"{src}: forward_auth.trusted_peers[{i}]: not an IP address or network: {cidr!r}"
            ) from None
    if s.forward_auth.enabled and not (s.forward_auth.trusted_peers or s.server.trusted_proxies):
        raise SettingsError(
            f"{src}: forward_auth.enabled = true needs forward_auth.trusted_peers "
            "(or server.trusted_proxies): the edge proxies that may ask for decisions"
        )
    for name, up in s.upstreams.items():
        from urllib.parse import urlsplit

        parts = urlsplit(up.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"{src}: upstreams.{name}.url must be an http(s) URL with a host, got {up.url!r}"
            )
        if parts.path not in ("", "/"):
            raise SettingsError(f"{src}: upstreams.{name}.url must not have a path, got {up.url!r}")
        _validate_upstream_limits(src, name, up)
    for key, value in (("policy.path", s.policy.path), ("routes.path", s.routes.path)):
        if not s.path(value).is_file():
            raise SettingsError(f"{src}: {key}: file not found: {s.path(value)}")
    if s.directory.backend == "http" and not s.directory.url:
        raise SettingsError(f'{src}: directory.url is required when directory.backend = "http"')
    if not 1 <= s.database.reader_pool_size <= 200:
        raise SettingsError(
            f"{src}: database.reader_pool_size must be between 1 and 200, got {s.database.reader_pool_size}"
        )
    if s.directory.cache_entries < 0:
        raise SettingsError(f"{src}: directory.cache_entries must not be negative, got {s.directory.cache_entries}")
    if s.directory.negative_ttl_seconds < 0:
        raise SettingsError(f"{src}: directory.negative_ttl_seconds must not be negative")
    if not 0 < s.directory.revision_poll_seconds <= 60:
        raise SettingsError(
            f"{src}: directory.revision_poll_seconds must be in (0, 60], got {s.directory.revision_poll_seconds}"
        )
    if s.directory.seed_file and not s.path(s.directory.seed_file).is_file():
        raise SettingsError(f"{src}: directory.seed_file: file not found: {s.directory.seed_file}")
    _validate_connections(s)
    _validate_tracing(s)


def _validate_tracing(s: Settings) -> None:
    from urllib.parse import urlsplit

    from gateway.tracing import TracingSettings

    t = s.section(TracingSettings, "tracing")
    src = s.source
    if not 0.0 <= t.sample_ratio <= 1.0:
        raise SettingsError(f"{src}: tracing.sample_ratio must be between 0 and 1, got {t.sample_ratio}")
    if t.export_interval_seconds <= 0 or t.timeout_seconds <= 0:
        raise SettingsError(f"{src}: tracing.export_interval_seconds and tracing.timeout_seconds must be positive")
    endpoint = urlsplit(t.endpoint)
    if t.enabled and (endpoint.scheme not in ("http", "https") or not endpoint.hostname):
        raise SettingsError(f"{src}: tracing.endpoint must be the collector's http(s) OTLP traces URL, "
                            f"got {t.endpoint!r}")


#: The async SQLAlchemy drivers the gateway runs on (a sync driver would block the event loop).
_DATABASE_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql"}


def _validate_connections(s: Settings) -> None:
    """URLs and sinks that would otherwise pass here and then fail at start with a traceback."""
    from urllib.parse import urlsplit

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    src = s.source
    try:
        db = make_url(s.database.url)
    except ArgumentError:
        raise SettingsError(f"{src}: database.url is not a database URL (expected e.g. "
                            "postgresql+asyncpg://user@host/db or sqlite+aiosqlite:///var/portal.db)") from None
    if db.drivername not in _DATABASE_DRIVERS:
        family = db.drivername.split("+", 1)[0]
        hint = next((d for d, f in _DATABASE_DRIVERS.items() if f == family), None)
        shown = db.render_as_string(hide_password=True)
        raise SettingsError(
            f"{src}: database.url {shown!r} uses driver {db.drivername!r}, which the gateway cannot run on"
            + (f": write {hint}://… (the async driver)" if hint else
               f"; supported: {', '.join(sorted(_DATABASE_DRIVERS))}")
        )
    if s.store.backend == "redis":
        store = urlsplit(s.store.url)
        if store.scheme == "redis+sentinel":
            from gateway.store.redis_url import RedisUrlError, parse_sentinel_url

            try:
                parse_sentinel_url(s.store.url)
            except RedisUrlError as exc:
                raise SettingsError(f"{src}: store.url (redis+sentinel://host:port,…/service/db): {exc}") from None
        elif store.scheme not in ("redis", "rediss", "unix") or (store.scheme != "unix" and not store.hostname):
            raise SettingsError(
                f"{src}: store.url must be a redis://host:port/db, rediss://…, unix:///path or "
                "redis+sentinel://host:port,…/service/db URL, "
                f"got {urlsplit(s.store.url)._replace(netloc=store.hostname or '').geturl()!r}"
            )
    sink = s.policy.decision_log
    if sink not in ("stdout", "off"):
        if sink in ("stderr", "-", "") or sink.endswith("/"):
            raise SettingsError(
                f'{src}: policy.decision_log must be "stdout", "off" or a file path, got {sink!r}'
            )
        parent = s.path(sink).parent
        if parent.exists() and not parent.is_dir():
            raise SettingsError(f"{src}: policy.decision_log: {parent} is not a directory")


def _validate_upstream_limits(src: str, name: str, up: UpstreamSettings) -> None:
    for key in (
        "connect_timeout_seconds",
        "read_timeout_seconds",
        "keepalive_seconds",
        "acquire_timeout_seconds",
        "write_timeout_seconds",
        "stream_idle_timeout_seconds",
        "body_idle_timeout_seconds",
        "request_timeout_seconds",
    ):
        value = getattr(up, key)
        if not value > 0:
            raise SettingsError(f"{src}: upstreams.{name}.{key}: timeouts must be positive, got {value}")
    if up.pool_size < 1:
        raise SettingsError(f"{src}: upstreams.{name}.pool_size must be at least 1, got {up.pool_size}")
    if up.max_pending_requests < 0:
        raise SettingsError(
            f"{src}: upstreams.{name}.max_pending_requests must not be negative, got {up.max_pending_requests}"
        )
    if up.max_response_header_bytes < 1024:
        raise SettingsError(
            f"{src}: upstreams.{name}.max_response_header_bytes must be at least 1024, "
            f"got {up.max_response_header_bytes}"
        )
