"""Alembic environment: migrates over the connection :func:`stead.migrations.upgrade` hands
it (inside the transaction that holds the migration lock)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from stead.models import Base

connection = context.config.attributes.get("connection")
assert isinstance(connection, Connection), "run migrations through stead.migrations.upgrade"
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
