"""The ``[oidc]`` settings section and its validation.

Every provider is a ``[oidc.providers.<name>]`` table. The checks run when the
component is built, so a typo or an unsafe algorithm stops the gateway at
start with a message that names the key, instead of failing per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from gateway.settings import SettingsError

__all__ = ["FORBIDDEN_ALGORITHMS", "OidcSettings", "ProviderSettings", "validate_oidc_settings"]

#: Never accepted, whatever the configuration says: "none" and every HMAC
#: algorithm (an HMAC "signed" with a provider's public key is the classic
#: key-confusion forgery).
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
KNOWN_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "Ed25519",
    }
)


@dataclass(frozen=True, slots=True)
class ClaimMapping:
    """Which ID-token claims carry the person's display name, e-mail and phone number.

    Mapped claims are shown and used as hints only: they never grant rights.
    """

    email: str = "email"
    name: str = "name"
    phone_number: str = "phone_number"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    issuer: str
    client_id: str
    client_secret: str = ""
    #: "login": a browser login provider (customer IdP, company SSO) that also
    #: issues access tokens for linked subjects; "api": only bearer tokens of API clients.
    kind: Literal["login", "api"] = "login"
    display_name: str = ""
    scopes: list[str] = field(default_factory=lambda: ["openid", "email", "profile"])
    #: The resource indicator / audience that access tokens for the gateway carry.
    audience: str = ""
    allowed_algorithms: list[str] = field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    claims: ClaimMapping = field(default_factory=ClaimMapping)
    #: Accept client-credentials tokens (no linked person) as service clients.
    allow_service_clients: bool = True
    #: Ask for refresh tokens (scope offline_access is added to the login's scopes).
    use_refresh_tokens: bool = True
    #: The provider marks its access tokens ``typ: at+jwt`` (RFC 9068): refuse every
    #: bearer token without it (an ID token then never passes, whatever its audience).
    require_at_jwt: bool = False


@dataclass(frozen=True, slots=True)
class OidcSettings:
    enabled: bool = False
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    #: Allowed clock difference for exp / nbf / iat.
    leeway_seconds: int = 30
    #: Provider metadata is fetched again after this long.
    discovery_ttl_seconds: float = 3600.0
    #: The same unknown kid makes the JWKS be refetched at most this often (per kid value).
    jwks_min_refresh_seconds: float = 60.0
    #: A fetched JWKS is trusted at most this long (shorter when the provider's
    #: Cache-Control max-age says so): a withdrawn key stops working after it.
    jwks_max_age_seconds: float = 300.0
    #: Timeout of every call to a provider.
    http_timeout_seconds: float = 5.0
    #: How long a started login may take (state, nonce, PKCE verifier live this long).
    login_timeout_seconds: float = 600.0
    #: How long an unknown (issuer, subject) has to give its registration proof.
    link_timeout_seconds: float = 900.0
    #: Upper bound of a gateway session made by an OIDC login when the provider
    #: gives no refresh token: the ID token's exp, but never longer than this.
    max_session_seconds: float = 12 * 3600.0
    #: Where a browser goes after login when no (safe) ``next`` is given (a page
    #: the gateway itself serves).
    default_next: str = "/auth/account"
    #: Where the browser lands after the provider's logout.
    post_logout_path: str = "/auth/login"
    #: Where an unknown subject is sent to give its registration proof (HTML page);
    #: the JSON answer always works.
    link_page_path: str = "/auth/oidc/link"


def _fail(source: str, key: str, message: str) -> SettingsError:
    return SettingsError(f"{source}: oidc.{key}: {message}")


def validate_oidc_settings(settings: OidcSettings, source: str = "<oidc>") -> None:
    """Refuse unsafe or meaningless provider settings at start."""
    if settings.enabled and not settings.providers:
        raise _fail(
            source, "providers", "oidc.enabled = true needs at least one [oidc.providers.<name>]"
        )
    for name, p in settings.providers.items():
        key = f"providers.{name}"
        if not name.replace("-", "").replace("_", "").isalnum() or not name.isascii():
            raise _fail(source, key, "provider names may use letters, digits, '-' and '_' only")
        parts = urlsplit(p.issuer)
        if (
            parts.scheme not in ("https", "http")
            or not parts.hostname
            or parts.query
            or parts.fragment
        ):
            raise _fail(
                source, f"{key}.issuer", f"must be an http(s) URL without query, got {p.issuer!r}"
            )
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise _fail(
                source, f"{key}.issuer", "plain http is allowed for loopback test providers only"
            )
        if not p.client_id:
            raise _fail(source, f"{key}.client_id", "must not be empty")
        if p.kind == "login" and not p.client_secret:
            raise _fail(source, f"{key}.client_secret", "a login provider needs its client secret")
        if p.kind == "login" and "openid" not in p.scopes:
            raise _fail(source, f"{key}.scopes", "must contain 'openid'")
        if not p.allowed_algorithms:
            raise _fail(source, f"{key}.allowed_algorithms", "must name at least one algorithm")
        for alg in p.allowed_algorithms:
            if alg in FORBIDDEN_ALGORITHMS or alg.lower() == "none":
                raise _fail(
                    source,
                    f"{key}.allowed_algorithms",
                    f"{alg!r} is never accepted (none and HMAC are refused)",
                )
            if alg not in KNOWN_ALGORITHMS:
                known = ", ".join(sorted(KNOWN_ALGORITHMS))
                raise _fail(
                    source,
                    f"{key}.allowed_algorithms",
                    f"unknown algorithm {alg!r} (known: {known})",
                )
        if p.kind == "api" and not p.audience:
            raise _fail(
                source, f"{key}.audience", "an api provider needs the audience its tokens carry"
            )
    for key in ("default_next", "post_logout_path", "link_page_path"):
        path = getattr(settings, key)
        if not path.startswith("/") or path.startswith(("//", "/\\")) or not path.isprintable():
            raise _fail(source, key, f"must be a local path of the gateway, got {path!r}")
    if not 5 <= settings.jwks_max_age_seconds <= 86400:
        raise _fail(source, "jwks_max_age_seconds", "must be between 5 and 86400 seconds")
    if not 0 <= settings.jwks_min_refresh_seconds <= 3600:
        raise _fail(source, "jwks_min_refresh_seconds", "must be between 0 and 3600 seconds")
    if settings.leeway_seconds < 0 or settings.leeway_seconds > 300:
        raise _fail(source, "leeway_seconds", "must be between 0 and 300")
