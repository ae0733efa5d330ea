"""``Authorization: Bearer <JWT>``: access tokens of API clients and linked subjects.

A bearer that starts with ``pgs_`` is a gateway session token (auth's
authenticator); anything else is a JWT of a configured provider. The provider
is picked by the token's ``iss`` and only then is the token trusted, after the
checks in `tokens.TokenVerifier`. Two kinds of caller come out:

* a client-credentials token (``sub`` equals the ``client_id``): a service
  client, ``client:<client_id>``, whose scopes become facts for the policy;
  it has no rights of its own (the policy denies by default);
* any other subject: the portal account linked to (issuer, subject); an unknown
  subject is refused (linking is done once, in the browser).

ID tokens and logout tokens are signed by the same keys and may carry the same
audience; `refuse_non_access_token` keeps them off the API (RFC 9068 ``typ``,
then the claims only they carry).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from gateway.auth.base import Credentials
from gateway.auth.oidc.errors import TokenRejected
from gateway.auth.oidc.ports import OidcAccounts
from gateway.auth.oidc.provider import OidcProvider
from gateway.principal import Principal

__all__ = ["OidcBearerAuthenticator", "peek_issuer", "refuse_non_access_token"]

# fullmatch only: with `$` a client id "svc\n" passed and became an X-Portal-Subject value.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


def peek_issuer(token: str) -> str | None:
    """The unverified ``iss`` of a compact JWT, only to pick which provider checks it."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", "")
    items = raw.split(" ") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in items if s):
        raise TokenRejected("oidc_token_claims", "scope claim malformed")
    return frozenset(s for s in items if s)


#: ``typ`` values an access token may carry: RFC 9068's, or the generic ones of
#: providers that do not follow it. Anything else (``logout+jwt``, ``id_token+jwt``,
#: ``secevent+jwt``, ``dpop+jwt`` ...) is some other kind of token.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "jwt"})
#: Claims only ID tokens (nonce, hashes) and logout tokens (events) carry.
_NOT_ACCESS_TOKEN_CLAIMS = ("nonce", "events", "at_hash", "c_hash", "s_hash")


def token_type(header: Mapping[str, Any]) -> str | None:
    value = header.get("typ")
    if value is None:
        return None
    if not isinstance(value, str):
        return ""
    return value.lower().removeprefix("application/")


def refuse_non_access_token(
    header: Mapping[str, Any], claims: Mapping[str, Any], provider: OidcProvider
) -> None:
    """An ID token or a logout token is not an access token, whatever its audience.

    ``typ: at+jwt`` (RFC 9068) decides where the provider sets it, and is required
    when the provider is configured to set it. Without it the claims decide: a
    nonce, a hash of another token or a logout event, or the client id among the
    audiences (an ID token is addressed to the client, an access token to the API).
    """
    typ = token_type(header)
    if typ is not None and typ not in ACCESS_TOKEN_TYPES:
        raise TokenRejected("oidc_token_type", f"token type {typ!r} is not an access token")
    if any(name in claims for name in _NOT_ACCESS_TOKEN_CLAIMS):
        raise TokenRejected("oidc_token_type", "an ID or logout token is not an access token")
    if typ == "at+jwt":
        return
    if provider.settings.require_at_jwt:
        raise TokenRejected("oidc_token_type", "access tokens of this provider are typ at+jwt")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if provider.settings.client_id in audiences:
        raise TokenRejected(
            "oidc_token_type", "addressed to the gateway's client (an ID token), not its API"
        )


class OidcBearerAuthenticator:
    id = "oidc_bearer"

    def __init__(self, providers: Mapping[str, OidcProvider], accounts: OidcAccounts) -> None:
        self._by_issuer = {p.settings.issuer: p for p in providers.values() if p.settings.audience}
        self._accounts = accounts

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        header = credentials.authorization
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token.startswith("pgs_"):
            return None
        issuer = peek_issuer(token)
        provider = self._by_issuer.get(issuer) if issuer is not None else None
        if provider is None:
            raise TokenRejected("oidc_token_issuer", "token of no configured provider")
        jose_header = provider.verifier.header(token)
        claims = await provider.verifier.verify(
            token, audience=provider.settings.audience, required=("sub",)
        )
        refuse_non_access_token(jose_header, claims, provider)
        scopes = scopes_of(claims)
        subject: str = claims["sub"]
        client_id = claims.get("client_id", claims.get("azp"))
        if isinstance(client_id, str) and client_id == subject:
            if not provider.settings.allow_service_clients:
                raise TokenRejected(
                    "oidc_service_client_refused", "service clients are not accepted"
                )
            if not _CLIENT_ID.fullmatch(client_id):
                raise TokenRejected("oidc_token_claims", "client_id malformed")
            return Principal(
                subject=f"client:{client_id}",
                kind="service",
                access_level="restricted",
                auth_methods=frozenset({"client_credentials"}),
                provider=provider.name,
                scopes=scopes,
            )
        principal = await self._accounts.principal_for_subject(
            provider.settings.issuer,
            subject,
            provider=provider.name,
            auth_methods=frozenset({"bearer_jwt"}),
        )
        if principal is None:
            raise TokenRejected("oidc_subject_not_linked", "subject not linked to a portal account")
        return Principal(
            subject=principal.subject,
            kind=principal.kind,
            login=principal.login,
            person_id=principal.person_id,
            access_level=principal.access_level,
            auth_methods=frozenset({"bearer_jwt"}),
            role=principal.role,
            bound_customer=principal.bound_customer,
            bound_msisdn=principal.bound_msisdn,
            provider=provider.name,
            scopes=scopes,
        )
