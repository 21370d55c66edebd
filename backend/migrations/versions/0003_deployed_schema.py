"""The deployed schema: tables, indexes and their states, and the fence writers check.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_tables",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("fields", sa.Text, nullable=False),
    )
    op.create_table(
        "schema_indexes",
        sa.Column("storage", sa.String(256), primary_key=True),
        sa.Column("table_name", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_ts", sa.BigInteger, nullable=True),
        sa.Column("cursor", sa.LargeBinary, nullable=True),
        sa.Column("scanned", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Read by every commit under the commit lock; a sequence, because its value is seen at
        # once by every transaction, whatever its snapshot (backend/storage/deployment.py).
        op.execute("CREATE SEQUENCE schema_fence_seq AS BIGINT MINVALUE 1")
        op.execute("SELECT setval('schema_fence_seq', 1)")
    else:
        table = op.create_table("schema_fence", sa.Column("value", sa.BigInteger, nullable=False))
        op.bulk_insert(table, [{"value": 1}])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE schema_fence_seq")
    else:
        op.drop_table("schema_fence")
    op.drop_table("schema_indexes")
    op.drop_table("schema_tables")
