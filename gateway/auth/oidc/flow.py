"""The browser login: authorization code flow with PKCE (S256), state and nonce.

`start` makes the authorization request; `finish` checks the callback in this
order, and every failure is one clear reason code (the detail goes to the log
only; no code, token or state value is ever logged):

1. the provider's ``error`` parameter, then ``state`` → the popped record
   (unknown / replayed / expired → ``oidc_state_invalid``);
2. the binding cookie of the browser that started the login (``oidc_state_invalid``);
3. ``iss`` parameter (RFC 9207) when present = the provider's issuer (mix-up defence);
4. the code exchange with the PKCE verifier (a replayed code is refused by the provider);
5. the ID token: signature (allow-listed alg, JWKS kid), ``iss``, ``aud`` = client_id,
   ``azp`` when several audiences, ``exp``/``iat``, ``nonce`` = ours, ``at_hash``
   when present;
6. the claims (`claims.map_claims`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash

from gateway.auth.oidc.claims import IdentityClaims, map_claims
from gateway.auth.oidc.errors import OidcLoginFailed, TokenRejected
from gateway.auth.oidc.lifetime import token_request
from gateway.auth.oidc.provider import OidcProvider
from gateway.auth.oidc.state import LoginState, LoginStates, random_token
from gateway.auth.web import safe_next

__all__ = ["CompletedLogin", "LoginFlow"]


@dataclass(frozen=True, slots=True)
class CompletedLogin:
    provider: OidcProvider
    identity: IdentityClaims
    next: str
    id_token: str
    id_token_exp: float
    refresh_token: str | None
    grant_expires_at: float


class LoginFlow:
    def __init__(
        self,
        *,
        providers: Mapping[str, OidcProvider],
        states: LoginStates,
        http: httpx.AsyncClient,
        clock: Callable[[], float],
        redirect_uri: str,
        default_next: str,
    ) -> None:
        self._providers = providers
        self._states = states
        self._http = http
        self._clock = clock
        self.redirect_uri = redirect_uri
        self._default_next = default_next

    def login_providers(self) -> list[OidcProvider]:
        return [p for p in self._providers.values() if p.settings.kind == "login"]

    def provider(self, name: str | None) -> OidcProvider:
        candidates = self.login_providers()
        if name is None and len(candidates) == 1:
            return candidates[0]
        for p in candidates:
            if p.name == name:
                return p
        raise OidcLoginFailed("oidc_unknown_provider", "no such login provider")

    def provider_any(self, name: str) -> OidcProvider | None:
        return self._providers.get(name)

    async def start(self, provider_name: str | None, next_path: str | None) -> tuple[str, str]:
        """(authorization URL, binding secret for the browser's cookie)."""
        provider = self.provider(provider_name)
        metadata = await provider.discovery.get()
        if metadata.code_challenge_methods and "S256" not in metadata.code_challenge_methods:
            raise OidcLoginFailed("oidc_provider_unsupported", "provider does not offer PKCE S256")
        state, nonce, verifier, binding = (
            random_token(),
            random_token(),
            random_token(),
            random_token(),
        )
        await self._states.save(
            state,
            LoginState(
                provider=provider.name,
                nonce=nonce,
                code_verifier=verifier,
                next=safe_next(next_path, self._default_next),
                binding_hash=LoginStates.binding_hash(binding),
                created_at=self._clock(),
            ),
        )
        scopes = list(provider.settings.scopes)
        if provider.settings.use_refresh_tokens and "offline_access" not in scopes:
            # OIDC Core 11: a refresh token that outlives the login is asked for this way.
            scopes.append("offline_access")
        params = {
            "response_type": "code",
            "client_id": provider.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + urlencode(params), binding

    async def finish(self, query: Mapping[str, str], binding: str | None) -> CompletedLogin:
        state_value = query.get("state", "")
        record = await self._states.take(state_value)
        if "error" in query:
            raise OidcLoginFailed(
                "oidc_provider_error", f"provider answered error={query['error'][:64]!r}"
            )
        if record is None:
            raise OidcLoginFailed("oidc_state_invalid", "unknown, used or expired state")
        if not record.bound_to(binding):
            raise OidcLoginFailed("oidc_state_invalid", "state not bound to this browser")
        provider = self._providers.get(record.provider)
        if provider is None:
            raise OidcLoginFailed("oidc_unknown_provider", "provider no longer configured")
        iss = query.get("iss")
        if iss is not None and not hmac.compare_digest(
            iss.encode(), provider.settings.issuer.encode()
        ):
            raise OidcLoginFailed(
                "oidc_issuer_mismatch", "authorization response from another issuer"
            )
        code = query.get("code", "")
        if not code or len(code) > 2048:
            raise OidcLoginFailed("oidc_code_missing", "no authorization code")
        try:
            tokens = await token_request(
                self._http,
                provider,
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": record.code_verifier,
                },
            )
        except TokenRejected as exc:
            raise OidcLoginFailed("oidc_code_rejected", exc.detail) from None
        now = self._clock()
        id_token = tokens.get("id_token")
        access_token = tokens.get("access_token")
        if not isinstance(id_token, str):
            raise OidcLoginFailed("oidc_id_token_invalid", "no ID token in the token response")
        claims = await self._check_id_token(provider, id_token, record, access_token)
        identity = map_claims(claims, provider.settings.claims)
        refresh = tokens.get("refresh_token")
        expires_in = tokens.get("expires_in")
        id_exp = float(claims["exp"])
        grant = now + float(expires_in) if isinstance(expires_in, int | float) else id_exp
        return CompletedLogin(
            provider=provider,
            identity=identity,
            next=record.next,
            id_token=id_token,
            id_token_exp=id_exp,
            # Without use_refresh_tokens a refresh token is not kept: the session
            # ends with the access grant, as configured.
            refresh_token=refresh
            if isinstance(refresh, str) and provider.settings.use_refresh_tokens
            else None,
            grant_expires_at=grant,
        )

    async def _check_id_token(
        self, provider: OidcProvider, id_token: str, record: LoginState, access_token: object
    ) -> dict[str, Any]:
        try:
            claims = await provider.verifier.verify(
                id_token, audience=provider.settings.client_id, required=("sub", "iat", "nonce")
            )
        except TokenRejected as exc:
            raise OidcLoginFailed("oidc_id_token_invalid", f"{exc.reason}: {exc.detail}") from None
        aud = claims.get("aud")
        if (
            isinstance(aud, list)
            and len(aud) > 1
            and claims.get("azp") != provider.settings.client_id
        ):
            raise OidcLoginFailed("oidc_id_token_invalid", "several audiences and azp is not us")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(
            nonce.encode(), record.nonce.encode()
        ):
            raise OidcLoginFailed("oidc_nonce_invalid", "nonce does not match this login")
        at_hash = claims.get("at_hash")
        if at_hash is not None:
            alg = provider.verifier.header(id_token)["alg"]
            expected = (
                create_half_hash(access_token, alg) if isinstance(access_token, str) else None
            )
            if (
                not isinstance(at_hash, str)
                or expected is None
                or not hmac.compare_digest(at_hash.encode(), expected)
            ):
                raise OidcLoginFailed(
                    "oidc_id_token_invalid", "at_hash does not match the access token"
                )
        return claims
