"""OpenID Connect Back-Channel Logout 1.0: the provider tells us a login ended.

The logout token is checked as strictly as an ID token (`tokens.TokenVerifier`:
allow-listed alg, JWKS kid, ``iss``, ``aud`` = our client_id, ``iat``, ``exp``)
plus the rules of section 2.6 of the spec: the ``events`` claim holds the
back-channel-logout event as a JSON object, ``sub`` or ``sid`` is present, there
is no ``nonce``, and the ``jti`` is seen only once (replay). Then every gateway
session of that subject / sid ends: the ones we know are revoked now, and a
marker makes the session guard refuse any we did not index (another replica
racing the index write).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from gateway.auth.oidc.bearer import peek_issuer, token_type
from gateway.auth.oidc.errors import TokenRejected
from gateway.auth.oidc.lifetime import SessionRecords
from gateway.auth.oidc.ports import OidcSessions
from gateway.auth.oidc.provider import OidcProvider
from gateway.store.base import Store

__all__ = ["LOGOUT_EVENT", "BackchannelLogout"]

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class BackchannelLogout:
    def __init__(
        self,
        *,
        providers: Mapping[str, OidcProvider],
        records: SessionRecords,
        sessions: OidcSessions,
        store: Store,
        prefix: str,
        clock: Callable[[], float],
    ) -> None:
        self._by_issuer = {
            p.settings.issuer: p for p in providers.values() if p.settings.kind == "login"
        }
        self._records = records
        self._sessions = sessions
        self._store = store
        self._prefix = prefix
        self._clock = clock

    async def handle(self, logout_token: str) -> int:
        """Validate the token and end the sessions; returns how many were ended."""
        issuer = peek_issuer(logout_token)
        provider = self._by_issuer.get(issuer) if issuer else None
        if provider is None:
            raise TokenRejected(
                "oidc_logout_token_invalid", "logout token of no configured provider"
            )
        try:
            # Spec 2.4: typ logout+jwt where the provider sets it; an access or ID token
            # (typ at+jwt, ...) of the same provider is never a logout token.
            typ = token_type(provider.verifier.header(logout_token))
            if typ is not None and typ not in ("logout+jwt", "jwt"):
                raise TokenRejected("oidc_token_type", f"token type {typ!r} is not a logout token")
            claims = await provider.verifier.verify(
                logout_token,
                audience=provider.settings.client_id,
                required=("iat", "jti", "events"),
            )
        except TokenRejected as exc:
            raise TokenRejected(
                "oidc_logout_token_invalid", f"{exc.reason}: {exc.detail}"
            ) from None
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
            raise TokenRejected("oidc_logout_token_invalid", "no back-channel logout event")
        if "nonce" in claims:
            raise TokenRejected("oidc_logout_token_invalid", "a logout token carries no nonce")
        sub, sid = claims.get("sub"), claims.get("sid")
        if sub is not None and (not isinstance(sub, str) or not sub):
            raise TokenRejected("oidc_logout_token_invalid", "sub malformed")
        if sid is not None and (not isinstance(sid, str) or not sid or len(sid) > 255):
            raise TokenRejected("oidc_logout_token_invalid", "sid malformed")
        if not sub and not sid:
            raise TokenRejected("oidc_logout_token_invalid", "neither sub nor sid")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise TokenRejected("oidc_logout_token_invalid", "jti malformed")
        exp = claims.get("exp")
        ttl = (
            max(60.0, float(exp) - self._clock() + 300.0)
            if isinstance(exp, int | float)
            else 3600.0
        )
        jti_key = (
            self._prefix + "bcl-jti:" + hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
        )
        if not await self._store.set_if_absent(jti_key, "1", ttl):
            raise TokenRejected("oidc_logout_token_invalid", "logout token replayed")

        # With a sid only that provider session ends; with only a sub, all of the subject's.
        now = self._clock()
        iss = provider.settings.issuer
        by_sub = None if sid else sub
        await self._records.mark_logged_out(iss, sub=by_sub, sid=sid, at=now)
        ended = 0
        for handle in await self._records.handles(iss, sub=by_sub, sid=sid):
            record = await self._records.get(handle)
            if record is None:
                continue
            if (sid and record.sid != sid) or (sub and record.subject != sub):
                continue
            await self._sessions.end_handle(handle)
            await self._records.delete(handle)
            ended += 1
        return ended
