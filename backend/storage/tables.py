"""The engine's SQL tables. Created and upgraded only by the Alembic migrations.

- ``commits``: one row per commit, keyed by its timestamp, with the function and identity that
  made it and its write set (the ids and index keys it touched, for reactivity elsewhere).
- ``log``: every document version ever written, in commit order: the truth.
- ``documents`` and ``index_entries``: projections of the log, maintained in the same database
  transaction as the log rows. ``verify-log`` rebuilds them from ``log`` and compares.
- ``mutation_outcomes``: the answer to each ``(sessionId, requestId)`` mutation over the wire,
  kept for a reconnect window so that a resend is answered instead of run again, and the
  identity it belongs to.
- ``schema_tables`` and ``schema_indexes``: the deployed schema (``storage/deployment.py``):
  each table's fields, and each index's definition, where its entries live and its state
  (being built, ready, being dropped). ``index_entries`` hold exactly the ready indexes' keys of
  the documents. The *fence* (the ``schema_fence_seq`` sequence on PostgreSQL, the one row of
  ``schema_fence`` on SQLite) moves whenever a deploy changes what writers must maintain; every
  commit checks it under the commit lock.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

commits = Table(
    "commits",
    metadata,
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("function_path", String(256), nullable=True),
    Column("identity", String(256), nullable=True),
    Column("write_set", Text, nullable=False),
)

log = Table(
    "log",
    metadata,
    Column("ts", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("table_name", String(128), nullable=False),
    Column("doc_id", String(64), nullable=False),
    Column("value", Text, nullable=True),  # NULL: the document was deleted
    PrimaryKeyConstraint("ts", "seq"),
    Index("log_by_doc", "doc_id", "ts"),
)

documents = Table(
    "documents",
    metadata,
    Column("doc_id", String(64), primary_key=True),
    Column("table_name", String(128), nullable=False),
    Column("value", Text, nullable=False),
)

index_entries = Table(
    "index_entries",
    metadata,
    Column("index_name", String(256), nullable=False),
    Column("key", LargeBinary, nullable=False),
    Column("doc_id", String(64), nullable=False),
    PrimaryKeyConstraint("index_name", "key"),
)

mutation_outcomes = Table(
    "mutation_outcomes",
    metadata,
    Column("session_id", String(128), nullable=False),  # the protocol's limit on sessionId
    Column("request_id", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # who made the mutation (``engine.outcome_owner``: a digest of the issuer, user and
    # session, or NULL for nobody): a resend of the same (sessionId, requestId) by anyone else
    # is refused, never answered from this outcome
    Column("owner", String(256), nullable=True),
    PrimaryKeyConstraint("session_id", "request_id"),
    Index("mutation_outcomes_by_age", "created_ms"),
)

schema_tables = Table(
    "schema_tables",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("fields", Text, nullable=False),  # ``Schema.describe``: what documents it accepts
)

schema_indexes = Table(
    "schema_indexes",
    metadata,
    Column("storage", String(256), primary_key=True),  # ``index_entries.index_name``
    Column("table_name", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("fields", Text, nullable=False),  # a JSON list of field paths
    Column("state", String(16), nullable=False),  # ``IndexState``
    # while building: the newest commit when the build began, and how far the scan has got
    Column("started_ts", BigInteger, nullable=True),
    Column("cursor", LargeBinary, nullable=True),
    Column("scanned", Boolean, nullable=False, default=False),
)

schema_fence = Table(  # SQLite only; PostgreSQL has the sequence ``schema_fence_seq``
    "schema_fence",
    metadata,
    Column("value", BigInteger, nullable=False),
)
