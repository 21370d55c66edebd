"""Mutation outcomes: session ids as long as the protocol allows, and the identity that owns
each outcome (a resend is answered from it only for the same caller).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column in place, so the table is copied
    with op.batch_alter_table("mutation_outcomes") as batch:
        batch.alter_column(
            "session_id", existing_type=sa.String(64), type_=sa.String(128), nullable=False
        )
        batch.add_column(sa.Column("owner", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mutation_outcomes") as batch:
        batch.drop_column("owner")
        batch.alter_column(
            "session_id", existing_type=sa.String(128), type_=sa.String(64), nullable=False
        )
