"""Portal accounts: who registered, how, and what the account is bound to.

The table ``auth_accounts`` sits on the shared `gateway.database.Base`, next to
the directory (one database, one Alembic history: revisions ``0101_accounts`` and
``0102_one_account_per_line``, which makes the database refuse a second account of a
line-bound role for the same line).
An account is bound once, at registration or OIDC linking, to one thing
(docs/domain.md section 6): ``role`` plus ``bound_customer`` and /
or ``bound_msisdn``. The policy derives the account's reach from that binding
and the directory; this module never decides permissions.

Secrets: the password hash (Argon2id, from `gateway.auth.passwords`) and the
TOTP seed, encrypted with `gateway.auth.crypto.SecretBox` (the account id is the
associated data). Neither leaves this module except through the explicit
methods below; `Account` (what callers get) carries neither.

API for other parts (OIDC linking uses it):

    accounts = Accounts(db, box=SecretBox(key), clock=clock)
    await accounts.get(account_id) / by_login(login)         -> Account | None
    await accounts.create(NewAccount(...))                    -> Account (raises AccountExists)
    await accounts.find_bound(role, bound_msisdn=..., bound_customer=...) -> list[Account]
    await accounts.password_hash(account_id) / set_password_hash(account_id, hash)
    await accounts.totp_secret(account_id)                    -> str | None (active seed)
    await accounts.set_pending_totp / pending_totp / activate_totp / reset_totp
    await accounts.delete(account_id), await accounts.all()
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Boolean, Float, Index, String, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from gateway.auth.crypto import SecretBox
from gateway.database import Base, Database
from gateway.principal import AccessLevel, Role

__all__ = ["Account", "AccountExists", "AccountRow", "Accounts", "NewAccount", "normalize_login"]

#: How an account came to be: a registration proof, OIDC linking, or the demo seed / CLI.
RegisteredWith = str


#: Line-bound roles have one account per line (revision 0102_one_account_per_line).
_LINE_BOUND = "role <> 'customer' AND bound_msisdn IS NOT NULL"


class AccountRow(Base):
    __tablename__ = "auth_accounts"
    __table_args__ = (
        Index("uq_auth_accounts_line_role", "role", "bound_msisdn", unique=True,
              sqlite_where=text(_LINE_BOUND), postgresql_where=text(_LINE_BOUND)),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    login: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    totp_pending: Mapped[str | None] = mapped_column(String(255), nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    access_level: Mapped[str] = mapped_column(String(16), nullable=False)
    bound_customer: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    bound_msisdn: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    person_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registered_with: Mapped[str] = mapped_column(String(32), nullable=False)
    identifier: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


@dataclass(frozen=True, slots=True)
class Account:
    """An account as callers see it: no password hash, no TOTP seed."""

    id: str
    login: str
    role: Role
    access_level: AccessLevel
    bound_customer: str | None
    bound_msisdn: str | None
    person_id: str | None
    registered_with: RegisteredWith
    identifier: str
    totp_enabled: bool
    has_password: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class NewAccount:
    login: str
    role: Role
    access_level: AccessLevel
    registered_with: RegisteredWith
    identifier: str
    password_hash: str | None = None
    bound_customer: str | None = None
    bound_msisdn: str | None = None
    person_id: str | None = None


class AccountExists(Exception):
    """`reason` is "login_taken" or "already_registered" (same role on the same line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize_login(login: str) -> str:
    """Login names compare case-insensitively and without surrounding space."""
    return login.strip().lower()


def _account(row: AccountRow) -> Account:
    return Account(
        id=row.id,
        login=row.login,
        role=cast(Role, row.role),
        access_level=cast(AccessLevel, row.access_level),
        bound_customer=row.bound_customer,
        bound_msisdn=row.bound_msisdn,
        person_id=row.person_id,
        registered_with=row.registered_with,
        identifier=row.identifier,
        totp_enabled=bool(row.totp_enabled),
        has_password=row.password_hash is not None,
        created_at=row.created_at,
    )


class Accounts:
    def __init__(self, db: Database, *, box: SecretBox, clock: Callable[[], float]) -> None:
        self._db = db
        self._box = box
        self._clock = clock

    async def get(self, account_id: str) -> Account | None:
        async with self._db.session() as s:
            row = await s.get(AccountRow, account_id)
            return None if row is None else _account(row)

    async def by_login(self, login: str) -> Account | None:
        async with self._db.session() as s:
            row = (
                await s.execute(select(AccountRow).where(AccountRow.login == normalize_login(login)))
            ).scalar_one_or_none()
            return None if row is None else _account(row)

    async def all(self) -> list[Account]:
        async with self._db.session() as s:
            rows = (await s.execute(select(AccountRow).order_by(AccountRow.login))).scalars().all()
            return [_account(r) for r in rows]

    async def find_bound(
        self, role: Role, *, bound_msisdn: str | None = None, bound_customer: str | None = None
    ) -> list[Account]:
        """Accounts with this role bound to this line / customer (duplicate registration check)."""
        query = select(AccountRow).where(AccountRow.role == role)
        if bound_msisdn is not None:
            query = query.where(AccountRow.bound_msisdn == bound_msisdn)
        if bound_customer is not None:
            query = query.where(AccountRow.bound_customer == bound_customer)
        async with self._db.session() as s:
            return [_account(r) for r in (await s.execute(query)).scalars().all()]

    async def create(self, new: NewAccount) -> Account:
        now = self._clock()
        row = AccountRow(
            id="acc_" + secrets.token_hex(12),
            login=normalize_login(new.login),
            password_hash=new.password_hash,
            totp_secret=None,
            totp_pending=None,
            totp_enabled=False,
            role=new.role,
            access_level=new.access_level,
            bound_customer=new.bound_customer,
            bound_msisdn=new.bound_msisdn,
            person_id=new.person_id,
            registered_with=new.registered_with,
            identifier=new.identifier,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._db.session() as s:
                taken = (await s.execute(select(AccountRow.id).where(AccountRow.login == row.login))).first()
                if taken is not None:
                    raise AccountExists("login_taken")
                s.add(row)
        except IntegrityError as exc:
            # Lost a race: the same login, or (the database's unique index) a second account
            # of a line-bound role for the same line.
            raise AccountExists(await self._conflict_of(row)) from exc
        return _account(row)

    async def _conflict_of(self, row: AccountRow) -> str:
        async with self._db.session() as s:
            if (await s.execute(select(AccountRow.id).where(AccountRow.login == row.login))).first() is not None:
                return "login_taken"
        return "already_registered"

    async def delete(self, account_id: str) -> bool:
        async with self._db.session() as s:
            result = await s.execute(delete(AccountRow).where(AccountRow.id == account_id))
            return bool(getattr(result, "rowcount", 0))

    async def _update(self, account_id: str, **values: object) -> None:
        async with self._db.session() as s:
            await s.execute(
                update(AccountRow)
                .where(AccountRow.id == account_id)
                .values(updated_at=self._clock(), **values)
            )

    async def password_hash(self, account_id: str) -> str | None:
        async with self._db.session() as s:
            row = await s.get(AccountRow, account_id)
            return None if row is None else row.password_hash

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await self._update(account_id, password_hash=password_hash)

    async def totp_secret(self, account_id: str) -> str | None:
        """The active (confirmed) TOTP seed in clear, or None when TOTP is not enrolled."""
        async with self._db.session() as s:
            row = await s.get(AccountRow, account_id)
            if row is None or not row.totp_enabled or row.totp_secret is None:
                return None
            return self._box.decrypt(row.totp_secret, context=account_id)

    async def set_pending_totp(self, account_id: str, secret: str) -> None:
        """Remember a new seed until the first code confirms it (the active one stays)."""
        await self._update(account_id, totp_pending=self._box.encrypt(secret, context=account_id))

    async def pending_totp(self, account_id: str) -> str | None:
        async with self._db.session() as s:
            row = await s.get(AccountRow, account_id)
            if row is None or row.totp_pending is None:
                return None
            return self._box.decrypt(row.totp_pending, context=account_id)

    async def activate_totp(self, account_id: str) -> None:
        """Make the pending seed the active one (after a correct first code)."""
        async with self._db.session() as s:
            row = await s.get(AccountRow, account_id)
            if row is None or row.totp_pending is None:
                return
            row.totp_secret = row.totp_pending
            row.totp_pending = None
            row.totp_enabled = True
            row.updated_at = self._clock()

    async def set_totp_secret(self, account_id: str, secret: str) -> None:
        """Set an active seed directly (demo seed, CLI)."""
        await self._update(
            account_id,
            totp_secret=self._box.encrypt(secret, context=account_id),
            totp_pending=None,
            totp_enabled=True,
        )

    async def reset_totp(self, account_id: str) -> None:
        await self._update(account_id, totp_secret=None, totp_pending=None, totp_enabled=False)
