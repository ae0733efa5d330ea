"""Server-side sessions in the store: opaque ids, idle and absolute timeouts, rotation.

A session id is 256 random bits (``secrets.token_urlsafe(32)``). Browsers carry it
in the ``__Host-`` cookie; apps carry the same id as ``Authorization: Bearer pgs_<id>``.
The store key is ``sess:<sha256(id)>`` (the *handle*): a dump of the store does not
yield usable tokens, and the handle is safe to log and to put in `Principal.session_id`.

A lookup is one store read (`Store.get_with_ref`: the record and its account's
epoch together; the memory store makes no round trip at all) and writes nothing,
except the touch: last-seen is written back at most every
`touch_interval_seconds` (60 s by default), as a compare-and-set over the record
that was read (`Store.replace_if_equal`), so a lookup in flight can never bring
back a session that a logout deleted or a rotation replaced.

Timeouts: a session ends `idle_timeout` after its last use and `absolute_timeout`
after the login, whichever comes first; both are checked against the injected
clock on every lookup (the store TTL only cleans up).

Rotation (no session fixation): `rotate()` pops the old record atomically (only
one caller wins) and writes the changed record under a fresh id. Every privilege
change (login, TOTP completion, step-up) goes through `create()` or `rotate()`;
nothing ever adopts an id the client chose.

Logout: `revoke(token)` ends one session on every replica (it is gone from the
shared store); `revoke_account(account_id)` ends all sessions of an account by
giving the account a new random *epoch*: each session records the epoch it was
made in, and a lookup refuses a session whose epoch is no longer the account's.

API (the OIDC part builds on it):

    sessions = Sessions(store, settings.section(SessionSettings, "sessions"), clock)
    token, session = await sessions.create(SessionData(...))
    session = await sessions.lookup(token)             # None when unknown / expired / revoked
    token, session = await sessions.rotate(token, methods=..., second_factor_at=now, pending=False)
    await sessions.revoke(token); await sessions.revoke_handle(handle); await sessions.revoke_account(id)
    session.principal()                               # the Principal the policy sees
    bearer_token(token) -> "pgs_..."; token_from_bearer("pgs_...") -> token | None
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from gateway.auth.config import SessionSettings
from gateway.principal import SECOND_FACTORS, AccessLevel, Principal, Role
from gateway.store.base import Store

__all__ = [
    "BEARER_PREFIX",
    "ENDS_AT",
    "Session",
    "SessionData",
    "Sessions",
    "bearer_token",
    "session_handle",
    "token_from_bearer",
]

BEARER_PREFIX = "pgs_"
#: `SessionData.extra` key: the epoch time at which the session ends at the latest.
ENDS_AT = "ends_at"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def bearer_token(token: str) -> str:
    return BEARER_PREFIX + token


def token_from_bearer(value: str) -> str | None:
    """The session id inside a ``pgs_`` bearer value, None when it is not one."""
    if not value.startswith(BEARER_PREFIX):
        return None
    return value[len(BEARER_PREFIX) :]


def _well_formed(token: str) -> bool:
    return 32 <= len(token) <= 128 and set(token) <= _TOKEN_CHARS


def session_handle(token: str) -> str:
    """The non-secret name of a session: sha256 of its id (hex)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionData:
    """What a session knows about its holder (all of it becomes the Principal)."""

    subject: str
    access_level: AccessLevel
    methods: tuple[str, ...]
    account_id: str | None = None
    login: str | None = None
    person_id: str | None = None
    role: Role | None = None
    bound_customer: str | None = None
    bound_msisdn: str | None = None
    #: Epoch time of the last TOTP / SMS-TAN proof (login or step-up).
    second_factor_at: float | None = None
    #: A password login waiting for its TOTP code: can do nothing but finish the login.
    pending: bool = False
    provider: str | None = None
    #: Free-form strings for other parts (OIDC: sid, id_token hint); never secrets of ours.
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Session:
    handle: str
    data: SessionData
    created_at: float
    last_seen: float
    expires_at: float
    #: The account's logout-everywhere epoch this session was made in.
    epoch: str = ""

    def principal(self) -> Principal:
        d = self.data
        return Principal(
            subject=d.subject,
            kind="account",
            login=d.login,
            person_id=d.person_id,
            access_level=d.access_level,
            auth_methods=frozenset(d.methods),
            second_factor_at=d.second_factor_at,
            role=d.role,
            bound_customer=d.bound_customer,
            bound_msisdn=d.bound_msisdn,
            session_id=self.handle,
            provider=d.provider,
        )

    @property
    def has_second_factor(self) -> bool:
        return bool(SECOND_FACTORS & set(self.data.methods))


def _encode(data: SessionData, created_at: float, last_seen: float, epoch: str) -> str:
    body = dataclasses.asdict(data)
    body["methods"] = list(data.methods)
    body["extra"] = dict(data.extra)
    record = json.dumps({"d": body, "c": created_at, "s": last_seen, "e": epoch}, separators=(",", ":"))
    # The first line names the account, so the store reads the record and the
    # account's epoch in one round trip (`Store.get_with_ref`). Account ids never
    # hold a newline (they are ``acc_<hex>``).
    return (data.account_id or "") + "\n" + record


def _decode(raw: str) -> tuple[SessionData, float, float, str]:
    obj: dict[str, Any] = json.loads(raw.partition("\n")[2] if "\n" in raw else raw)
    body = dict(obj["d"])
    body["methods"] = tuple(body["methods"])
    body["extra"] = dict(body.get("extra") or {})
    return SessionData(**body), float(obj["c"]), float(obj["s"]), str(obj.get("e", ""))


class Sessions:
    def __init__(self, store: Store, settings: SessionSettings, clock: Callable[[], float]) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    @property
    def settings(self) -> SessionSettings:
        return self._settings

    def _limits(self, data: SessionData, created_at: float, last_seen: float) -> float:
        if data.pending:
            return created_at + self._settings.pending_timeout_seconds
        limit = min(
            last_seen + self._settings.idle_timeout_seconds,
            created_at + self._settings.absolute_timeout_seconds,
        )
        # A login whose proof expires earlier (OIDC: the provider's grant without a
        # refresh token) ends then: the lookup, the store TTL and expires_at agree.
        ends_at = data.extra.get(ENDS_AT)
        return min(limit, float(ends_at)) if ends_at else limit

    async def _epoch(self, data: SessionData) -> str:
        if data.account_id is None:
            return ""
        return await self._store.get("sess_ep:" + data.account_id) or ""

    @overload
    async def _write(
        self, token: str, data: SessionData, created_at: float, last_seen: float, epoch: str
    ) -> Session: ...

    @overload
    async def _write(
        self,
        token: str,
        data: SessionData,
        created_at: float,
        last_seen: float,
        epoch: str,
        *,
        replacing: str,
    ) -> Session | None: ...

    async def _write(
        self,
        token: str,
        data: SessionData,
        created_at: float,
        last_seen: float,
        epoch: str,
        *,
        replacing: str | None = None,
    ) -> Session | None:
        """Write the record; with `replacing`, only over exactly that record (None when it is gone)."""
        handle = session_handle(token)
        expires = self._limits(data, created_at, last_seen)
        record = _encode(data, created_at, last_seen, epoch)
        ttl = expires - self._clock()
        if replacing is None:
            await self._store.set("sess:" + handle, record, ttl)
        elif not await self._store.replace_if_equal("sess:" + handle, replacing, record, ttl):
            return None
        return Session(handle, data, created_at, last_seen, expires, epoch)

    async def create(self, data: SessionData) -> tuple[str, Session]:
        """A new session under a fresh random id; returns (token, session)."""
        now = self._clock()
        token = secrets.token_urlsafe(32)
        return token, await self._write(token, data, now, now, await self._epoch(data))

    async def _load(self, handle: str) -> tuple[Session, str] | None:
        """The live session and its stored record, in one store round trip (memory: none).

        Nothing is written here: an expired or logged-out-everywhere record is left
        to its store TTL, so the lookup stays a single read.
        """
        raw, current_epoch = await self._store.get_with_ref("sess:" + handle, "sess_ep:")
        if raw is None:
            return None
        data, created_at, last_seen, epoch = _decode(raw)
        if data.account_id is not None and "\n" not in raw:
            # A record written before the account line existed: its epoch the slow way.
            current_epoch = await self._store.get("sess_ep:" + data.account_id)
        expires = self._limits(data, created_at, last_seen)
        if self._clock() >= expires:
            return None
        if data.account_id is not None and current_epoch is not None and current_epoch != epoch:
            return None
        return Session(handle, data, created_at, last_seen, expires, epoch), raw

    async def lookup(self, token: str) -> Session | None:
        """The live session for `token` (and note its use), or None.

        One store read. The touch (last-seen written back, which moves the idle
        timeout) happens at most once per `touch_interval_seconds` and is a
        compare-and-set over the record just read: a request in flight that read
        the session before a logout or a rotation can never write it back.
        """
        if not _well_formed(token):
            return None
        handle = session_handle(token)
        loaded = await self._load(handle)
        if loaded is None:
            return None
        session, raw = loaded
        now = self._clock()
        if not session.data.pending and now - session.last_seen >= self._settings.touch_interval_seconds:
            touched = await self._write(
                token, session.data, session.created_at, now, session.epoch, replacing=raw
            )
            # None: revoked, rotated or touched by a parallel request since the read. The
            # read came first, so this request may go on as that session; it is not
            # written back.
            session = touched or session
        return session

    async def rotate(self, token: str, **changes: Any) -> tuple[str, Session] | None:
        """Replace the session by one with a new id and `changes` applied.

        The old id stops working at once. A pending session that is completed
        counts as a new login (its absolute timeout starts now). None when the old
        session is gone (or another request rotated it first).
        """
        if not _well_formed(token):
            return None
        handle = session_handle(token)
        loaded = await self._load(handle)
        if loaded is None or await self._store.pop("sess:" + handle) is None:
            return None
        current = loaded[0]
        data = dataclasses.replace(current.data, **changes)
        now = self._clock()
        created = now if current.data.pending else current.created_at
        new_token = secrets.token_urlsafe(32)
        return new_token, await self._write(new_token, data, created, now, current.epoch)

    async def revoke(self, token: str) -> None:
        if _well_formed(token):
            await self._store.delete("sess:" + session_handle(token))

    async def revoke_handle(self, handle: str) -> None:
        await self._store.delete("sess:" + handle)

    async def revoke_account(self, account_id: str) -> None:
        """End every session of the account, on every replica."""
        await self._store.set(
            "sess_ep:" + account_id, secrets.token_hex(8), self._settings.absolute_timeout_seconds + 60
        )
