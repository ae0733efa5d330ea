"""Directory revision: one counter that every write to a directory table bumps.

Revision ID: 0002_directory_revision
Revises: 0001_directory
Create Date: 2026-12-01

Why: each gateway worker serves directory facts from memory (`gateway.directory.cache`)
and must learn that a fact changed, whoever changed it (``portal-gateway directory
import``, an operator's SQL, a CRM sync). Triggers on every ``dir_*`` table bump
``dir_revision.revision`` in the writer's own transaction, so the new revision becomes
visible exactly when the new facts do (a sequence would be visible before the commit,
and a gateway could cache the old facts under the new revision). PostgreSQL also sends
``NOTIFY portal_gateway_directory`` (payload: the schema) at commit, so listening gateways
re-read the revision at once instead of at their next poll.

- PostgreSQL: one statement-level trigger per table (INSERT, UPDATE, DELETE, TRUNCATE);
  the function names the table by its schema, so a writer's ``search_path`` does not matter.
- SQLite: row-level triggers (SQLite has no statement triggers), three per table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_directory_revision"
down_revision: str | Sequence[str] | None = "0001_directory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Every table that holds directory facts (``dir_revision`` itself excluded).
TABLES = (
    "dir_persons", "dir_customers", "dir_customer_relations", "dir_contracts", "dir_lines",
    "dir_invoices", "dir_vpns",
)
CHANNEL = "portal_gateway_directory"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upgrade() -> None:
    op.create_table(
        "dir_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dir_revision"),
        sa.CheckConstraint("id = 1", name="ck_dir_revision_single_row"),
    )
    op.execute("INSERT INTO dir_revision (id, revision) VALUES (1, 1)")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
        q = _quote(schema)
        op.execute(
            f"""
            CREATE FUNCTION {q}.dir_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                UPDATE {q}.dir_revision SET revision = revision + 1 WHERE id = 1;
                PERFORM pg_notify('{CHANNEL}', {_literal(schema)});
                RETURN NULL;
            END
            $body$
            """
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {q}.{table} FOR EACH STATEMENT EXECUTE FUNCTION {q}.dir_bump_revision()"
            )
    else:
        for table in TABLES:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_revision_{event.lower()} AFTER {event} ON {table} "
                    "BEGIN UPDATE dir_revision SET revision = revision + 1 WHERE id = 1; END"
                )


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_revision ON {table}")
        op.execute("DROP FUNCTION IF EXISTS dir_bump_revision()")
    else:
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_revision_{event}")
    op.drop_table("dir_revision")
