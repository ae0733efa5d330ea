"""How long an OIDC-made gateway session may live, and what ends it early.

Each session opened by an OIDC login has a record ``oidc:sess:<handle>`` in the
store: the provider, subject and ``sid``, the refresh token (rotated on every
use), when the access grant runs out and the hard end the provider allows. The
`OidcSessionGuard` authenticator runs before the session authenticator and
never produces a Principal itself; it only ends sessions that must end:

* the provider's back-channel logout marked the subject or ``sid`` logged out;
* the grant ran out and there is no refresh token, or the refresh failed
  (``invalid_grant``): the person has to log in again.

A refresh is done by one request only (``set_if_absent`` lock); the others go on
with the still-valid session meanwhile.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

import httpx

from gateway.auth.base import Credentials
from gateway.auth.crypto import SecretBox, SecretBoxError
from gateway.auth.oidc.errors import ProviderUnavailable, TokenRejected
from gateway.auth.oidc.ports import OidcSessions
from gateway.auth.oidc.provider import OidcProvider
from gateway.principal import Principal
from gateway.store.base import Store

__all__ = ["OidcSessionGuard", "OidcSessionRecord", "SessionRecords", "subject_key"]

#: Refresh this long before the access grant runs out.
REFRESH_MARGIN_SECONDS = 30.0


def subject_key(issuer: str, value: str) -> str:
    return hashlib.sha256(f"{issuer}\x00{value}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class OidcSessionRecord:
    handle: str
    provider: str
    issuer: str
    subject: str
    sid: str | None
    login_at: float
    #: The ID token, only as id_token_hint for RP-initiated logout.
    id_token: str
    refresh_token: str | None
    #: When the provider's access grant runs out (refresh before that).
    grant_expires_at: float
    #: The hard end: never later than what the provider allows or max_session_seconds.
    ends_at: float


class SessionRecords:
    """The store side: records, the subject / sid indexes and logout markers.

    The provider's ID and refresh tokens are encrypted at rest (`SecretBox`, the
    session handle as associated data), as TOTP seeds are: a dump of the store
    yields no token that works at the provider.
    """

    def __init__(self, store: Store, *, prefix: str, ttl: float, box: SecretBox) -> None:
        self._store = store
        self._prefix = prefix
        self._ttl = ttl
        self._box = box

    def _key(self, kind: str, value: str) -> str:
        return f"{self._prefix}{kind}:{value}"

    async def save(self, record: OidcSessionRecord) -> None:
        body = asdict(record)
        context = "oidc-session:" + record.handle
        body["id_token"] = self._box.encrypt(record.id_token, context=context)
        if record.refresh_token is not None:
            body["refresh_token"] = self._box.encrypt(record.refresh_token, context=context)
        await self._store.set(self._key("sess", record.handle), json.dumps(body), self._ttl)

    async def add(self, record: OidcSessionRecord) -> None:
        await self.save(record)
        await self._index("bysub", subject_key(record.issuer, record.subject), record.handle)
        if record.sid:
            await self._index("bysid", subject_key(record.issuer, record.sid), record.handle)

    async def _index(self, kind: str, key: str, handle: str) -> None:
        raw = await self._store.get(self._key(kind, key))
        handles: list[str] = json.loads(raw) if raw else []
        if handle not in handles:
            handles = [*handles[-49:], handle]
        await self._store.set(self._key(kind, key), json.dumps(handles), self._ttl)

    async def get(self, handle: str) -> OidcSessionRecord | None:
        raw = await self._store.get(self._key("sess", handle))
        if not raw:
            return None
        body = json.loads(raw)
        context = "oidc-session:" + handle
        try:
            body["id_token"] = self._box.decrypt(body["id_token"], context=context)
            if body.get("refresh_token") is not None:
                body["refresh_token"] = self._box.decrypt(body["refresh_token"], context=context)
        except SecretBoxError:
            # Another key, or a record copied to another handle: not this session's tokens.
            raise TokenRejected("oidc_session_unreadable", "stored provider tokens do not decrypt") from None
        return OidcSessionRecord(**body)

    async def delete(self, handle: str) -> None:
        await self._store.delete(self._key("sess", handle))

    async def handles(self, issuer: str, *, sub: str | None, sid: str | None) -> list[str]:
        found: list[str] = []
        for kind, value in (("bysub", sub), ("bysid", sid)):
            if value:
                raw = await self._store.get(self._key(kind, subject_key(issuer, value)))
                found.extend(json.loads(raw) if raw else [])
        return list(dict.fromkeys(found))

    async def mark_logged_out(
        self, issuer: str, *, sub: str | None, sid: str | None, at: float
    ) -> None:
        for kind, value in (("outsub", sub), ("outsid", sid)):
            if value:
                await self._store.set(
                    self._key(kind, subject_key(issuer, value)), repr(at), self._ttl
                )

    async def logged_out(self, record: OidcSessionRecord) -> bool:
        checks = [("outsub", record.subject)] + ([("outsid", record.sid)] if record.sid else [])
        for kind, value in checks:
            raw = await self._store.get(self._key(kind, subject_key(record.issuer, value)))
            if raw is not None and float(raw) >= record.login_at:
                return True
        return False

    async def lock(self, handle: str, ttl: float) -> bool:
        return await self._store.set_if_absent(self._key("refreshing", handle), "1", ttl)

    async def unlock(self, handle: str) -> None:
        await self._store.delete(self._key("refreshing", handle))


class OidcSessionGuard:
    """Ends OIDC sessions that outlived their provider grant; never authenticates anyone."""

    id = "oidc_session_guard"

    def __init__(
        self,
        *,
        records: SessionRecords,
        sessions: OidcSessions,
        providers: Mapping[str, OidcProvider],
        http: httpx.AsyncClient,
        clock: Callable[[], float],
    ) -> None:
        self._records = records
        self._sessions = sessions
        self._providers = providers
        self._http = http
        self._clock = clock

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        handle = self._sessions.session_handle(credentials)
        if handle is None:
            return None
        record = await self._records.get(handle)
        if record is None:
            return None
        now = self._clock()
        if await self._records.logged_out(record):
            await self._end(record)
            raise TokenRejected("oidc_logged_out", "the provider ended this login")
        if now >= record.ends_at:
            await self._end(record)
            raise TokenRejected("oidc_session_expired", "the provider's grant ran out")
        if now >= record.grant_expires_at - REFRESH_MARGIN_SECONDS:
            await self._refresh(record, now)
        return None

    async def _end(self, record: OidcSessionRecord) -> None:
        await self._sessions.end_handle(record.handle)
        await self._records.delete(record.handle)

    async def _refresh(self, record: OidcSessionRecord, now: float) -> None:
        provider = self._providers.get(record.provider)
        if record.refresh_token is None or provider is None:
            if now >= record.grant_expires_at:
                await self._end(record)
                raise TokenRejected("oidc_session_expired", "no refresh token; log in again")
            return
        if not await self._records.lock(record.handle, 30.0):
            return  # another request is refreshing this session right now
        try:
            try:
                tokens = await token_request(
                    self._http,
                    provider,
                    {"grant_type": "refresh_token", "refresh_token": record.refresh_token},
                )
            except TokenRejected:
                await self._end(record)
                raise TokenRejected(
                    "oidc_refresh_failed", "refresh refused; log in again"
                ) from None
            expires_in = tokens.get("expires_in")
            grant_end = (
                now + float(expires_in) if isinstance(expires_in, int | float) else record.ends_at
            )
            new_refresh = tokens.get("refresh_token")
            new_id_token = tokens.get("id_token")
            updated = replace(
                record,
                refresh_token=new_refresh if isinstance(new_refresh, str) else record.refresh_token,
                grant_expires_at=min(grant_end, record.ends_at),
                id_token=new_id_token if isinstance(new_id_token, str) else record.id_token,
            )
            await self._records.save(updated)
        finally:
            await self._records.unlock(record.handle)


async def token_request(
    http: httpx.AsyncClient, provider: OidcProvider, form: dict[str, str]
) -> dict[str, object]:
    """POST to the token endpoint with client_secret_basic; never logs the form."""
    metadata = await provider.discovery.get()
    try:
        response = await http.post(
            metadata.token_endpoint,
            data=form,
            auth=(provider.settings.client_id, provider.settings.client_secret),
            headers={"accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            detail=f"token endpoint unreachable: {type(exc).__name__}"
        ) from exc
    if response.status_code >= 500:
        raise ProviderUnavailable(detail=f"token endpoint: HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise TokenRejected(
            "oidc_token_request_refused", f"token endpoint: {response.status_code} {error!r}"
        )
    return body
