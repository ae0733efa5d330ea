"""One account per line and line-bound role, enforced by the database.

Revision ID: 0102_one_account_per_line
Revises: 0101_accounts
Create Date: 2026-12-02

Why: registration and OIDC linking refuse a second account for a line that already has
one of that role (409 ``already_registered``, docs/domain.md section 6). Checked in code
only, the rule could be raced: parallel registrations with the same correct PUK each
found no account and each created one. A partial unique index makes the database the
judge; the loser of a race gets the same 409. Customer accounts (Kundenkennwort: holder
and authorised persons) may be several and are not covered.

A database that already holds such duplicates stops the upgrade with the accounts named:
which one is the rightful account is for the operator to decide, never for a migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.database import DatabaseError

revision: str = "0102_one_account_per_line"
down_revision: str | Sequence[str] | None = "0101_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINE_BOUND = "role <> 'customer' AND bound_msisdn IS NOT NULL"


def upgrade() -> None:
    duplicates = op.get_bind().execute(sa.text(
        "SELECT role, bound_msisdn, COUNT(*) FROM auth_accounts"
        f" WHERE {LINE_BOUND} GROUP BY role, bound_msisdn HAVING COUNT(*) > 1"
    )).all()
    if duplicates:
        named = ", ".join(f"{role} on line {msisdn} ({count} accounts)" for role, msisdn, count in duplicates)
        raise DatabaseError(
            "auth_accounts holds more than one account for a line and role: "
            f"{named}. Delete all but the rightful one (table auth_accounts), then start again."
        )
    op.create_index(
        "uq_auth_accounts_line_role", "auth_accounts", ["role", "bound_msisdn"], unique=True,
        sqlite_where=sa.text(LINE_BOUND), postgresql_where=sa.text(LINE_BOUND),
    )


def downgrade() -> None:
    op.drop_index("uq_auth_accounts_line_role", table_name="auth_accounts")
