"""Alembic environment: runs on the connection that `Database.migrate()` hands in.

There is no alembic.ini and no URL here on purpose: the gateway's settings decide the
database, and `gateway.database.alembic_config(connection)` passes the open (sync-facing)
connection in ``config.attributes["connection"]``. SQLite gets batch mode so that later
revisions may alter columns (SQLite rebuilds the table).
"""

from __future__ import annotations

import importlib

from alembic import context

from gateway.database import Base

# Import the modules that define tables so that autogenerate compares against them.
for _module in ("gateway.directory.sql", "gateway.auth.accounts"):
    importlib.import_module(_module)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "gateway migrations run through gateway.database.Database.migrate() "
        "(or pass a connection in config.attributes['connection'])"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
