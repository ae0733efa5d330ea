"""Directory tables: persons, customers, relations, contracts, lines, invoices, VPNs.

Revision ID: 0001_directory
Revises:
Create Date: 2026-01-01

The auth revision (accounts) follows with ``down_revision = "0001_directory"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_directory"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CUSTOMER_KINDS = "kind IN ('private', 'business', 'business_member', 'split_private', 'framework')"
CONTRACT_KINDS = "kind IN ('private', 'business', 'business_member', 'invoice_split', 'company')"
RELATIONS = "relation IN ('holder', 'authorised', 'member', 'split_private', 'admin')"
PART = "part IS NULL OR part IN ('private', 'business')"


def upgrade() -> None:
    op.create_table(
        "dir_persons",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dir_persons"),
    )
    op.create_table(
        "dir_customers",
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("kundenkennwort_hash", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("number", name="pk_dir_customers"),
        sa.CheckConstraint(CUSTOMER_KINDS, name="ck_dir_customers_kind"),
    )
    op.create_table(
        "dir_customer_relations",
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("customer_number", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "relation", "customer_number", name="pk_dir_customer_relations"),
        sa.CheckConstraint(RELATIONS, name="ck_dir_customer_relations_relation"),
        sa.ForeignKeyConstraint(
            ["person_id"], ["dir_persons.id"],
            name="fk_dir_customer_relations_person_id_dir_persons", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_number"], ["dir_customers.number"],
            name="fk_dir_customer_relations_customer_number_dir_customers", ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_dir_customer_relations_customer_number", "dir_customer_relations", ["customer_number"]
    )
    op.create_table(
        "dir_contracts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("customer_number", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("framework_customer", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dir_contracts"),
        sa.CheckConstraint(CONTRACT_KINDS, name="ck_dir_contracts_kind"),
        sa.ForeignKeyConstraint(
            ["customer_number"], ["dir_customers.number"],
            name="fk_dir_contracts_customer_number_dir_customers", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["framework_customer"], ["dir_customers.number"],
            name="fk_dir_contracts_framework_customer_dir_customers", ondelete="SET NULL",
        ),
    )
    op.create_index("ix_dir_contracts_customer_number", "dir_contracts", ["customer_number"])
    op.create_table(
        "dir_lines",
        sa.Column("msisdn", sa.String(20), nullable=False),
        sa.Column("contract_id", sa.String(64), nullable=False),
        sa.Column("customer_number", sa.String(32), nullable=False),
        sa.Column("part", sa.String(16), nullable=True),
        sa.Column("user_person_id", sa.String(64), nullable=True),
        sa.Column("puk_hash", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("msisdn", name="pk_dir_lines"),
        sa.CheckConstraint(PART, name="ck_dir_lines_part"),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["dir_contracts.id"],
            name="fk_dir_lines_contract_id_dir_contracts", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_number"], ["dir_customers.number"],
            name="fk_dir_lines_customer_number_dir_customers", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_person_id"], ["dir_persons.id"],
            name="fk_dir_lines_user_person_id_dir_persons", ondelete="SET NULL",
        ),
    )
    op.create_index("ix_dir_lines_contract_id", "dir_lines", ["contract_id"])
    op.create_index("ix_dir_lines_customer_number", "dir_lines", ["customer_number"])
    op.create_index("ix_dir_lines_user_person_id", "dir_lines", ["user_person_id"])
    op.create_table(
        "dir_invoices",
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("contract_id", sa.String(64), nullable=False),
        sa.Column("customer_number", sa.String(32), nullable=False),
        sa.Column("part", sa.String(16), nullable=True),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_dir_invoices"),
        sa.CheckConstraint(PART, name="ck_dir_invoices_part"),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["dir_contracts.id"],
            name="fk_dir_invoices_contract_id_dir_contracts", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_number"], ["dir_customers.number"],
            name="fk_dir_invoices_customer_number_dir_customers", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_dir_invoices_contract_id", "dir_invoices", ["contract_id"])
    op.create_index("ix_dir_invoices_customer_number", "dir_invoices", ["customer_number"])
    op.create_table(
        "dir_vpns",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("customer_number", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dir_vpns"),
        sa.ForeignKeyConstraint(
            ["customer_number"], ["dir_customers.number"],
            name="fk_dir_vpns_customer_number_dir_customers", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_dir_vpns_customer_number", "dir_vpns", ["customer_number"])


def downgrade() -> None:
    for table in (
        "dir_vpns", "dir_invoices", "dir_lines", "dir_contracts", "dir_customer_relations",
        "dir_customers", "dir_persons",
    ):
        op.drop_table(table)
