"""Which portal account an (issuer, subject) is linked to: table ``auth_oidc_links``.

A link is made once, after the registration proof (`adapters.AuthOidcAccounts.link`),
and from then on a login or bearer token of that subject acts as the account.
The row goes when the account goes (foreign key, ON DELETE CASCADE).

The table sits on the shared `gateway.database.Base`. Until an Alembic revision
for it exists in ``gateway/migrations/versions/`` (owned by the migrations
owner), `OidcLinks.ensure_table` creates it at start when missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from sqlalchemy import Float, ForeignKey, String, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from gateway.auth.accounts import AccountRow
from gateway.database import Base, Database

__all__ = ["OidcLinkRow", "OidcLinks"]


class OidcLinkRow(Base):
    __tablename__ = "auth_oidc_links"

    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey(AccountRow.id, ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class OidcLinks:
    def __init__(self, db: Database, *, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    async def ensure_table(self) -> None:
        async with self._db.engine.begin() as conn:
            table = cast(Table, OidcLinkRow.__table__)
            await conn.run_sync(lambda c: table.create(c, checkfirst=True))

    async def account_of(self, issuer: str, subject: str) -> str | None:
        async with self._db.session() as s:
            row = await s.get(OidcLinkRow, (issuer, subject))
            return row.account_id if row is not None else None

    async def add(self, issuer: str, subject: str, account_id: str, provider: str) -> bool:
        """False when (issuer, subject) is already linked (to whatever account)."""
        try:
            async with self._db.session() as s:
                if await s.get(OidcLinkRow, (issuer, subject)) is not None:
                    return False
                s.add(
                    OidcLinkRow(
                        issuer=issuer,
                        subject=subject,
                        account_id=account_id,
                        provider=provider,
                        created_at=self._clock(),
                    )
                )
        except IntegrityError:
            return False
        return True

    async def of_account(self, account_id: str) -> list[tuple[str, str]]:
        async with self._db.session() as s:
            rows = await s.execute(
                select(OidcLinkRow.issuer, OidcLinkRow.subject).where(
                    OidcLinkRow.account_id == account_id
                )
            )
            return [(r[0], r[1]) for r in rows.all()]
