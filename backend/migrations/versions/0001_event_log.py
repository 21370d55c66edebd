"""The event log, its projections, and mutation outcomes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commits",
        sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("function_path", sa.String(256), nullable=True),
        sa.Column("identity", sa.String(256), nullable=True),
        sa.Column("write_set", sa.Text, nullable=False),
    )
    op.create_table(
        "log",
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("table_name", sa.String(128), nullable=False),
        sa.Column("doc_id", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("ts", "seq"),
    )
    op.create_index("log_by_doc", "log", ["doc_id", "ts"])
    op.create_table(
        "documents",
        sa.Column("doc_id", sa.String(64), primary_key=True),
        sa.Column("table_name", sa.String(128), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "index_entries",
        sa.Column("index_name", sa.String(256), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("doc_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("index_name", "key"),
    )
    op.create_table(
        "mutation_outcomes",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "request_id"),
    )
    op.create_index("mutation_outcomes_by_age", "mutation_outcomes", ["created_ms"])
    if op.get_bind().dialect.name == "postgresql":
        # Commit timestamps, drawn under the commit advisory lock (see backend/storage/store.py).
        op.execute("CREATE SEQUENCE commit_ts_seq AS BIGINT MINVALUE 1")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE commit_ts_seq")
    for name in ("mutation_outcomes", "index_entries", "documents", "log", "commits"):
        op.drop_table(name)
