"""Alembic environment: runs on a connection handed over by ``backend.storage.migrate``."""

from __future__ import annotations

from alembic import context

from backend.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m backend migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
