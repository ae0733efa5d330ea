"""Alembic migrations of the gateway's SQL database (run by `gateway.database.Database.migrate`)."""
