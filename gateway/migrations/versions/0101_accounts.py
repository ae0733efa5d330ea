"""Auth tables: portal accounts (login, password hash, encrypted TOTP seed, binding).

Revision ID: 0101_accounts
Revises: 0001_directory
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0101_accounts"
down_revision: str | Sequence[str] | None = "0001_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_accounts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("login", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("totp_secret", sa.String(255), nullable=True),
        sa.Column("totp_pending", sa.String(255), nullable=True),
        sa.Column("totp_enabled", sa.Boolean(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("access_level", sa.String(16), nullable=False),
        sa.Column("bound_customer", sa.String(32), nullable=True),
        sa.Column("bound_msisdn", sa.String(32), nullable=True),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("registered_with", sa.String(32), nullable=False),
        sa.Column("identifier", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_accounts"),
        sa.UniqueConstraint("login", name="uq_auth_accounts_login"),
    )
    op.create_index("ix_auth_accounts_bound_customer", "auth_accounts", ["bound_customer"])
    op.create_index("ix_auth_accounts_bound_msisdn", "auth_accounts", ["bound_msisdn"])


def downgrade() -> None:
    op.drop_index("ix_auth_accounts_bound_msisdn", table_name="auth_accounts")
    op.drop_index("ix_auth_accounts_bound_customer", table_name="auth_accounts")
    op.drop_table("auth_accounts")
