"""Alembic environment: runs on the connection handed in by `worker.store.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import worker.store.models  # noqa: F401  (registers the tables)

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `migrate()` runs migrations
    raise RuntimeError("run migrations through worker.store.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
