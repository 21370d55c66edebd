"""The store: snapshot reads, serializable writes, and the ordered commit log, over SQL.

How serializability and commit order are obtained (see ARCHITECTURE.md, "Known traps"):

- Mutations use optimistic concurrency on the engine's own read sets (``storage/occ.py``): a
  mutation reads at a snapshot (``mutation()``: PostgreSQL ``REPEATABLE READ READ ONLY``, a
  SQLite WAL read transaction) and keeps its writes in memory; ``commit()`` hands it to the
  process's committer, which under the commit lock checks its read set against the write sets
  committed after its snapshot (in memory for the recent window and this process's commits,
  else from ``commits``) and writes it, in one short transaction, or refuses it with
  ``ReadSetConflict`` (run it again). No ``SERIALIZABLE``: the database never aborts a
  mutation that did not really conflict.
- The commit lock: on PostgreSQL a transaction-scoped advisory lock, held from before the
  commit timestamps are drawn (from a sequence) to the end of the transaction, so timestamps
  are handed out in commit order, across processes, and a reader that tails the log "after ts
  N" can never miss a later commit with a smaller ts. On SQLite the database's write lock
  (``BEGIN IMMEDIATE``), taken with a process-wide lock; another process that holds the file's
  lock makes us wait (``busy_timeout``).
- ``writer()`` is the older, locked writer (it holds the commit lock for its whole transaction:
  SQLite's maintenance batches use it); its commits are foreign to the committer's window and
  are checked from ``commits`` like another process's.
- Readers use one snapshot per query (``REPEATABLE READ READ ONLY`` / a WAL read transaction)
  and learn its timestamp as the newest commit they can see: because timestamps follow commit
  order, every snapshot holds exactly the commits up to that timestamp.

A mutation's documents and index entries (the projections), its log rows and its commit row
(under the timestamp) are all written in one database transaction: a crash at any instant
leaves all of it or none of it.

How a write reaches the database (each statement is a round trip, and round trips are most of
what a small mutation costs, see BENCHMARKS.md):

- A writer buffers its document and index writes, in order, and sends them just before the
  transaction's next read (so a mutation always reads its own writes) or with the commit.
- On PostgreSQL the commit is a single statement (``_PG_COMMIT``): it takes the advisory lock,
  draws the timestamp, inserts the buffered documents and index entries, the commit row, the
  log rows and a wire mutation's outcome, and sends the notification. Buffered writes other
  than those trailing inserts are sent just before it.
- On SQLite a flush, a commit, a ``get`` and a ``scan`` each run as one call on the
  connection's worker thread (``_in_worker``), with ``sqlite3`` directly, instead of three or
  four thread round trips per statement through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import and_, bindparam, delete, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.base import Executable

from backend.errors import ConvexError, ErrorCode
from backend.storage.database import DatabaseKind, create_db_engine, kind_of
from backend.storage.health import StoreHealth
from backend.storage.occ import (
    PG_GUARDED_BATCH,
    PG_GUARDED_ONE,
    PG_LOCK,
    PG_RECORD_CTES,
    PG_WRITE_SETS_AFTER,
    NetWrites,
    PendingCommit,
    RecentWrites,
    batch_stamps,
    pg_batch_params,
)
from backend.storage.readset import ReadConflict, ReadSet, WriteSet
from backend.storage.tables import commits, documents, index_entries, mutation_outcomes
from backend.values.convex_json import decode_stored, dumps, to_json
from backend.values.index_key import KeyRange

RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}
# what asyncpg raises for a statement sent to it directly (not through SQLAlchemy)
_ASYNCPG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
T = TypeVar("T")


class StorageError(Exception):
    """The database failed in a way a retry will not mend."""


class RetryableConflict(Exception):
    """The transaction lost a race (serialization failure, deadlock, busy database)."""


class ReadSetConflict(RetryableConflict):
    """A commit after the mutation's snapshot wrote what it read (``conflict`` says where): it
    must run again, at a newer snapshot. Nothing was written."""

    def __init__(self, conflict: ReadConflict, ts: int, *, foreign: bool = False) -> None:
        super().__init__(f"{conflict.reason}, written at {ts}")
        self.conflict = conflict
        self.ts = ts
        self.foreign = foreign  # the commit it met was another process's


RETRY_AFTER = timedelta(seconds=2)
PROBE_TIMEOUT = timedelta(seconds=2)


class StoreUnavailable(ConvexError, StorageError):
    """The database cannot be reached (refused, dropped, shutting down, out of connections).

    A ``ConvexError`` with code ``UNAVAILABLE``, so every transport answers it as one (HTTP
    503 with ``Retry-After``; on the socket, an error with that code): the caller should try
    again shortly. ``cause`` is for the server's log only. Nothing of the failed call was
    committed, except in the one case no database can rule out: the connection dropped while
    the commit itself was in flight (a wire mutation's resend then finds its outcome).
    """

    def __init__(self, cause: str) -> None:
        super().__init__(
            ErrorCode.UNAVAILABLE,
            "The database is unavailable; try again shortly",
            retryAfterMs=int(RETRY_AFTER.total_seconds() * 1000),
        )
        self.cause = cause


# SQLSTATEs that mean "the server is not there to serve": connection exceptions (class 08),
# shutting down or starting up (57P01-57P03), too many connections (53300).
UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error")


def unavailable_cause(exc: BaseException) -> str | None:
    """Why ``exc`` means the database is out of reach, or None if it means something else."""
    state = _sqlstate(exc) if isinstance(exc, DBAPIError) else getattr(exc, "sqlstate", None)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return f"connection lost ({_describe(exc)})"
    if isinstance(state, str) and (state.startswith("08") or state in UNAVAILABLE_SQLSTATES):
        return f"SQLSTATE {state} ({_describe(exc)})"
    if isinstance(exc, sqlite3.OperationalError | OperationalError):
        text_of = str(exc.orig if isinstance(exc, DBAPIError) else exc).lower()
        if any(marker in text_of for marker in _SQLITE_UNAVAILABLE):
            return _describe(exc)
    return None


def _describe(exc: BaseException) -> str:
    """A short cause for the log: the driver's own error, first line only."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text_of = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text_of[0][:200]}" if text_of else type(inner).__name__


class SchemaFenceMoved(Exception):
    """A deploy changed what writers must maintain since this process last read the deployed
    schema: the commit was not made. Read the deployment again, then retry
    (``storage/deployment.py``)."""

    def __init__(self, fence: int | None) -> None:
        super().__init__(f"the deployed schema moved to fence {fence}")
        self.fence = fence


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def classify(exc: BaseException) -> BaseException:
    """Map a driver error to ``RetryableConflict`` when retrying can succeed.

    Takes SQLAlchemy's wrapped errors and the bare ``sqlite3`` errors of the statements the
    store runs on SQLite's worker thread itself.
    """
    if isinstance(exc, DBAPIError):
        state = _sqlstate(exc)
        if state in RETRYABLE_SQLSTATES:
            return RetryableConflict(str(state))
        if isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower():
            return RetryableConflict("database is locked")
        if isinstance(exc, IntegrityError) and state in (None, "23505"):
            # a unique key claimed concurrently (an outcome or an id): the retry will see it
            return RetryableConflict("unique violation")
    elif isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
        return RetryableConflict("database is locked")
    elif isinstance(exc, sqlite3.IntegrityError):
        return RetryableConflict("unique violation")
    return exc


def encode_doc(document: dict[str, Any]) -> str:
    return dumps(to_json(document))


def decode_doc(text_value: str) -> dict[str, Any]:
    """A document read back from the store. The text is our own encoding (``encode_doc``),
    checked when it was written, so it is decoded without checking it again."""
    value = decode_stored(text_value)
    assert isinstance(value, dict)
    return value


def decode_docs(texts: Sequence[str]) -> list[dict[str, Any]]:
    """Many stored documents at once: decoded as one JSON array, which saves most of the
    per-call cost of the decoder (each text is one whole JSON value, so the array is valid)."""
    values = decode_stored("[" + ",".join(texts) + "]")
    if len(values) != len(texts):
        raise StorageError("a stored document is not a single JSON value")
    return values  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CommitRecord:
    ts: int
    function_path: str | None
    identity: str | None
    write_set_json: str


# ---- statements, built once ---------------------------------------------------------------
# SQLAlchemy caches a statement's compiled form, but building the statement object again for
# every call cost about 15 µs each (BENCHMARKS.md); values travel as bind parameters.

_COMMITS_AFTER = select(commits).where(commits.c.ts > bindparam("after")).order_by(commits.c.ts)
_INSERT_OUTCOME = insert(mutation_outcomes)


_SQLITE_GET_DOCUMENT = "SELECT table_name, value FROM documents WHERE doc_id = ?"
_SQLITE_FIND_OUTCOME = (
    "SELECT ts, outcome, owner FROM mutation_outcomes WHERE session_id = ? AND request_id = ?"
)


@cache
def _sqlite_scan_sql(lower: bool, upper: bool, descending: bool) -> str:
    """The range scan of one index, for each combination of bounds and order, for SQLite; its
    parameters: index name, [start], [end], limit."""
    where = " AND ".join(["e.index_name = ?"] + ["e.key >= ?"] * lower + ["e.key < ?"] * upper)
    order = "DESC" if descending else "ASC"
    # only constant fragments are put together here; every value is a ``?`` parameter
    return (
        "SELECT e.key, d.value FROM index_entries AS e"  # noqa: S608
        f" JOIN documents AS d ON d.doc_id = e.doc_id WHERE {where} ORDER BY e.key {order} LIMIT ?"
    )


_PG_GET_DOCUMENT = "SELECT table_name, value FROM documents WHERE doc_id = $1::text"


def _pg_scan_where(lower: bool, upper: bool) -> tuple[str, str]:
    """The conditions of a range scan of one index, and its limit's parameter (asyncpg
    parameters: index name, [start], [end], limit)."""
    conditions = ["e.index_name = $1::text"]
    if lower:
        conditions.append(f"e.key >= ${len(conditions) + 1}::bytea")
    if upper:
        conditions.append(f"e.key < ${len(conditions) + 1}::bytea")
    return " AND ".join(conditions), f"${len(conditions) + 1}::bigint"


@cache
def _pg_scan(lower: bool, upper: bool, descending: bool) -> str:
    """``_sqlite_scan_sql`` for asyncpg; its parameters: index name, [start], [end], limit."""
    where, limit = _pg_scan_where(lower, upper)
    order = "DESC" if descending else "ASC"
    # only constant fragments are put together here; every value is a ``$n`` parameter
    return (
        "SELECT e.key, d.value FROM index_entries AS e"  # noqa: S608
        f" JOIN documents AS d ON d.doc_id = e.doc_id WHERE {where}"
        f" ORDER BY e.key {order} LIMIT {limit}"
    )


def _sqlite_fetchone(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    return db.execute(sql, params).fetchone()


def _sqlite_fetchall(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return db.execute(sql, params).fetchall()


@dataclass(frozen=True, eq=False)
class _WriteKind:
    """One kind of buffered projection write: its SQL for SQLite (run with ``sqlite3``) and its
    SQLAlchemy statement (for PostgreSQL), whose parameters ``names`` a row's values in order."""

    sqlite_sql: str
    statement: Executable
    names: tuple[str, ...]


_INSERT_DOCUMENT = _WriteKind(
    "INSERT INTO documents (doc_id, table_name, value) VALUES (?, ?, ?)",
    insert(documents),
    ("doc_id", "table_name", "value"),
)
_UPDATE_DOCUMENT = _WriteKind(
    "UPDATE documents SET value = ? WHERE doc_id = ?",
    update(documents).where(documents.c.doc_id == bindparam("id")),
    ("value", "id"),
)
_DELETE_DOCUMENT = _WriteKind(
    "DELETE FROM documents WHERE doc_id = ?",
    delete(documents).where(documents.c.doc_id == bindparam("id")),
    ("id",),
)
_INSERT_KEY = _WriteKind(
    "INSERT INTO index_entries (index_name, key, doc_id) VALUES (?, ?, ?)",
    insert(index_entries),
    ("index_name", "key", "doc_id"),
)
_DELETE_KEY = _WriteKind(
    "DELETE FROM index_entries WHERE index_name = ? AND key = ?",
    delete(index_entries).where(
        and_(
            index_entries.c.index_name == bindparam("n"),
            index_entries.c.key == bindparam("k"),
        )
    ),
    ("n", "k"),
)
_FOLDABLE = (_INSERT_DOCUMENT, _INSERT_KEY)  # what the PostgreSQL commit statement inserts

Write = tuple[_WriteKind, tuple[Any, ...]]


def _runs(writes: Sequence[Write]) -> list[tuple[_WriteKind, list[tuple[Any, ...]]]]:
    """Consecutive writes of one kind, grouped (each group is one ``executemany``)."""
    return [(kind, [row for _, row in group]) for kind, group in itertools.groupby(writes, _kind)]


def _kind(write: Write) -> _WriteKind:
    return write[0]


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the arrays ``_PG_COMMIT`` unnests)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


# The whole PostgreSQL commit, as one statement. Its text never changes (rows travel as
# arrays), so each connection prepares it once. Data-modifying CTEs run to completion exactly
# once whether or not the main query reads them; the timestamp is computed once (``stamp`` is
# materialized) and every insert takes it from there.
#
# The advisory lock must be held before the sequence is advanced, or a transaction could draw
# a timestamp, wait, and commit after a later one. ``stamp`` selects FROM ``lock`` (a
# materialized CTE), so ``nextval`` runs while producing the row that ``lock`` yields only once
# ``pg_advisory_xact_lock`` has returned: a data dependency, not an accident of the plan
# (tests/backend/storage/test_store_paths.py checks it). The lock is released by the commit.
_PG_COMMIT = text(
    f"""
WITH lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(CAST(:lock_key AS bigint))
),
stamp AS MATERIALIZED (
    SELECT setval('commit_ts_seq', GREATEST(nextval('commit_ts_seq'), CAST(:now AS bigint))) AS ts,
        pg_sequence_last_value('schema_fence_seq') AS fence
    FROM lock
),
new_documents AS (
    INSERT INTO documents (doc_id, table_name, value)
    SELECT * FROM unnest(
        CAST(:doc_ids AS text[]), CAST(:doc_tables AS text[]), CAST(:doc_values AS text[])
    )
),
new_keys AS (
    INSERT INTO index_entries (index_name, key, doc_id)
    SELECT * FROM unnest(
        CAST(:key_indexes AS text[]), CAST(:key_keys AS bytea[]), CAST(:key_doc_ids AS text[])
    )
),
{PG_RECORD_CTES}
SELECT ts, fence, pg_notify(CAST(:channel AS text), CAST(ts AS text)) FROM stamp
"""  # noqa: S608 - splices a constant, no input
)

# SQLite's commit, run on the worker thread in one call together with the buffered writes.
_LATEST_TS = "SELECT max(ts) FROM commits"  # the same on both databases
_SQLITE_INSERT_COMMIT = (
    "INSERT INTO commits (ts, function_path, identity, write_set) VALUES (?, ?, ?, ?)"
)
_SQLITE_INSERT_LOG = "INSERT INTO log (ts, seq, table_name, doc_id, value) VALUES (?, ?, ?, ?, ?)"
_SQLITE_FENCE = "SELECT value FROM schema_fence"
_SQLITE_INSERT_OUTCOME = (
    "INSERT INTO mutation_outcomes (session_id, request_id, ts, outcome, created_ms, owner)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Outcome:
    """A wire mutation's answer to remember, under ``(session_id, request_id)``; ``owner``
    names who made it (None: nobody), and only that caller is ever answered from it."""

    session_id: str
    request_id: int
    outcome_json: str
    created_ms: int
    owner: str | None


@dataclass(frozen=True)
class StoredOutcome:
    ts: int
    outcome_json: str
    owner: str | None


def _sqlite_apply(db: sqlite3.Connection, writes: Sequence[Write]) -> None:
    for kind, rows in _runs(writes):
        db.executemany(kind.sqlite_sql, rows)


def _sqlite_commit(
    db: sqlite3.Connection,
    writes: Sequence[Write],
    now_ns: int,
    commit_row: tuple[str | None, str | None, str],
    log_rows: Sequence[tuple[str, str, str | None]],
    outcome: Outcome | None,
    fence: int | None = None,
) -> int:
    """The buffered writes, then the commit and log rows; returns the commit timestamp."""
    if fence is not None:  # we hold the write lock: no deploy can move it until we commit
        (current,) = db.execute(_SQLITE_FENCE).fetchone()
        if current != fence:
            raise SchemaFenceMoved(current)
    _sqlite_apply(db, writes)
    # We hold the database's write lock: nobody else can commit until we do.
    (last,) = db.execute(_LATEST_TS).fetchone()
    ts = max(now_ns, int(last or 0) + 1)
    db.execute(_SQLITE_INSERT_COMMIT, (ts, *commit_row))
    db.executemany(_SQLITE_INSERT_LOG, [(ts, seq, *row) for seq, row in enumerate(log_rows)])
    if outcome is not None:
        db.execute(_SQLITE_INSERT_OUTCOME, _outcome_row(outcome, ts))
    return ts


def _outcome_row(outcome: Outcome, ts: int) -> tuple[Any, ...]:
    """``outcome`` in the column order of ``_SQLITE_INSERT_OUTCOME``."""
    o = outcome
    return (o.session_id, o.request_id, ts, o.outcome_json, o.created_ms, o.owner)


async def _in_worker(conn: AsyncConnection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(sqlite3_connection, *args)`` on the aiosqlite worker thread of ``conn``.

    aiosqlite has no public call for this: ``_execute`` (queue a function on the worker thread)
    and ``_conn`` (its ``sqlite3`` connection) are internals, the same in 0.20 (the oldest
    version pyproject.toml allows) and 0.22; every SQLite test of the store goes through here,
    so a change would fail loudly. ``sqlite3`` errors come back bare, not wrapped by SQLAlchemy.
    """
    sync = conn.sync_connection
    assert sync is not None
    driver = sync.connection.driver_connection  # the aiosqlite.Connection
    result: T = await driver._execute(lambda: fn(driver._conn, *args))  # type: ignore[union-attr]
    return result


class StoreReader:
    """Reads at one snapshot, inside one database transaction."""

    def __init__(self, conn: AsyncConnection, snapshot_ts: int | None, store: Store) -> None:
        self.conn = conn
        self._snapshot_ts = snapshot_ts
        self._store = store
        # SQLite: reads run on the worker thread (see ``_in_worker``); PostgreSQL: through
        # asyncpg itself (see ``_pg_fetch``)
        self._sqlite = store.kind is DatabaseKind.SQLITE

    @property
    def snapshot_ts(self) -> int:
        """The newest commit in this snapshot (not known for ``snapshot(timestamped=False)``)."""
        if self._snapshot_ts is None:
            raise RuntimeError("this snapshot was opened without learning its timestamp")
        return self._snapshot_ts

    async def get(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        if self._sqlite:
            row = await _in_worker(self.conn, _sqlite_fetchone, _SQLITE_GET_DOCUMENT, (doc_id,))
        else:
            rows = await self._pg_fetch(_PG_GET_DOCUMENT, doc_id)
            row = rows[0] if rows else None
        return None if row is None else (row[0], decode_doc(row[1]))

    async def scan(
        self, index_name: str, key_range: KeyRange, *, descending: bool, limit: int
    ) -> list[tuple[bytes, dict[str, Any]]]:
        """Up to ``limit`` (key, document) pairs of one index within ``key_range``, in order."""
        if key_range.is_empty():
            return []
        lower, upper = bool(key_range.start), key_range.end is not None
        rows: Sequence[Any]
        if self._sqlite:
            sql = _sqlite_scan_sql(lower, upper, descending)
            bounds = (key_range.start,) * lower + (key_range.end,) * upper
            rows = await _in_worker(self.conn, _sqlite_fetchall, sql, (index_name, *bounds, limit))
        else:
            bounds = (key_range.start,) * lower + (key_range.end,) * upper
            sql = _pg_scan(lower, upper, descending)
            rows = await self._pg_fetch(sql, index_name, *bounds, limit)
        docs = decode_docs([value for _key, value in rows])
        return [(bytes(row[0]), doc) for row, doc in zip(rows, docs, strict=True)]

    async def commits_after(self, after_ts: int) -> list[CommitRecord]:
        """The commits in this snapshot newer than ``after_ts``, oldest first."""
        rows = (await self.conn.execute(_COMMITS_AFTER, {"after": after_ts})).all()
        return [CommitRecord(int(r.ts), r.function_path, r.identity, r.write_set) for r in rows]

    async def _pg_fetch(self, sql: str, *args: Any) -> list[Any]:
        """Rows of one statement sent through the transaction's asyncpg connection itself
        (``Store._driver_rows``)."""
        return await self._store._driver_rows(self.conn, sql, *args)


class StoreWriter(StoreReader):
    """A serializable read-write transaction. Writes become visible only if ``commit`` runs.

    Writes are buffered (see the module docstring) and sent before the next read, so every
    read sees them; ``commit`` sends what is left together with the commit itself.
    """

    def __init__(self, conn: AsyncConnection, store: Store) -> None:
        super().__init__(conn, 0, store)
        self._pending: list[Write] = []
        # (table, id, document JSON or None for a deletion), in order: the log rows to write
        self._log: list[tuple[str, str, str | None]] = []
        self._committed = False

    # ---- writes (buffered) ------------------------------------------------------------------

    async def insert(
        self,
        table: str,
        document: dict[str, Any],
        keys: Sequence[tuple[str, bytes]],
        *,
        encoded: str | None = None,
    ) -> None:
        """Insert ``document``; ``encoded`` is its ``encode_doc`` text if the caller has it."""
        doc_id = document["_id"]
        value = encode_doc(document) if encoded is None else encoded
        self._pending.append((_INSERT_DOCUMENT, (doc_id, table, value)))
        self._pending.extend((_INSERT_KEY, (name, key, doc_id)) for name, key in keys)
        self._log.append((table, doc_id, value))

    async def replace(
        self,
        table: str,
        document: dict[str, Any],
        old_keys: Sequence[tuple[str, bytes]],
        new_keys: Sequence[tuple[str, bytes]],
        *,
        encoded: str | None = None,
    ) -> None:
        doc_id = document["_id"]
        value = encode_doc(document) if encoded is None else encoded
        self._pending.append((_UPDATE_DOCUMENT, (value, doc_id)))
        self._pending.extend((_DELETE_KEY, k) for k in old_keys if k not in new_keys)
        self._pending.extend(
            (_INSERT_KEY, (name, key, doc_id))
            for name, key in new_keys
            if (name, key) not in old_keys
        )
        self._log.append((table, doc_id, value))

    async def delete(self, table: str, doc_id: str, old_keys: Sequence[tuple[str, bytes]]) -> None:
        self._pending.append((_DELETE_DOCUMENT, (doc_id,)))
        self._pending.extend((_DELETE_KEY, k) for k in old_keys)
        self._log.append((table, doc_id, None))

    async def _flush(self) -> None:
        """Send the buffered writes, so the next read sees them."""
        writes, self._pending = self._pending, []
        if self._store.kind is DatabaseKind.SQLITE:
            await _in_worker(self.conn, _sqlite_apply, writes)
        else:
            for kind, rows in _runs(writes):
                await self.conn.execute(
                    kind.statement, [dict(zip(kind.names, row, strict=True)) for row in rows]
                )

    # ---- reads (after the buffered writes) ---------------------------------------------------

    async def get(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        if self._pending:
            await self._flush()
        return await super().get(doc_id)

    async def scan(
        self, index_name: str, key_range: KeyRange, *, descending: bool, limit: int
    ) -> list[tuple[bytes, dict[str, Any]]]:
        if self._pending:
            await self._flush()
        return await super().scan(index_name, key_range, descending=descending, limit=limit)

    async def commits_after(self, after_ts: int) -> list[CommitRecord]:
        if self._pending:
            await self._flush()
        return await super().commits_after(after_ts)

    async def find_outcome(self, session_id: str, request_id: int) -> StoredOutcome | None:
        """The remembered answer to ``(session_id, request_id)``, whoever made it."""
        if self._pending:
            await self._flush()
        if self._sqlite:
            key = (session_id, request_id)
            row = await _in_worker(self.conn, _sqlite_fetchone, _SQLITE_FIND_OUTCOME, key)
        else:
            rows = await self._pg_fetch(_PG_FIND_OUTCOME, session_id, request_id)
            row = rows[0] if rows else None
        return None if row is None else StoredOutcome(int(row[0]), str(row[1]), row[2])

    async def current_ts(self) -> int:
        """The newest commit timestamp (for an attempt that wrote nothing)."""
        if self._pending:
            await self._flush()
        return await self._store._latest_ts(self.conn)

    # ---- commit -----------------------------------------------------------------------------

    async def commit(
        self,
        *,
        now_ns: int,
        write_set_json: str,
        function_path: str | None,
        identity: str | None,
        outcome: Outcome | None = None,
        fence: int | None = None,
    ) -> int:
        """Send the buffered writes, the commit row and the log rows (and ``outcome``, a wire
        mutation's answer, under the same timestamp); return the commit timestamp.

        With ``fence`` (the deployed schema's fence this writer's indexes follow), the commit is
        made only if the fence has not moved; otherwise ``SchemaFenceMoved`` is raised and the
        transaction rolls back."""
        if self._committed:
            raise RuntimeError("a writer commits once")
        self._committed = True
        if self._store.kind is DatabaseKind.SQLITE:
            writes, self._pending = self._pending, []
            commit_row = (function_path, identity, write_set_json)
            return await _in_worker(
                self.conn, _sqlite_commit, writes, now_ns, commit_row, self._log, outcome, fence
            )
        # Send the writes the commit statement cannot carry (all up to the last one that is not
        # an insert); the inserts after it go into the commit statement, in the same order.
        fold_from = len(self._pending)
        while fold_from and self._pending[fold_from - 1][0] in _FOLDABLE:
            fold_from -= 1
        folded = self._pending[fold_from:]
        self._pending = self._pending[:fold_from]
        if self._pending:
            await self._flush()
        doc_ids, doc_tables, doc_values = _columns(
            [row for kind, row in folded if kind is _INSERT_DOCUMENT], 3
        )
        key_indexes, key_keys, key_doc_ids = _columns(
            [row for kind, row in folded if kind is _INSERT_KEY], 3
        )
        log_tables, log_doc_ids, log_values = _columns(self._log, 3)
        result = await self.conn.execute(
            _PG_COMMIT,
            {
                "lock_key": self._store._lock_key,
                "now": now_ns,
                "doc_ids": doc_ids,
                "doc_tables": doc_tables,
                "doc_values": doc_values,
                "key_indexes": key_indexes,
                "key_keys": key_keys,
                "key_doc_ids": key_doc_ids,
                "function_path": function_path,
                "identity": identity,
                "write_set": write_set_json,
                "log_seqs": list(range(len(self._log))),
                "log_tables": log_tables,
                "log_doc_ids": log_doc_ids,
                "log_values": log_values,
                "outcome_session": outcome.session_id if outcome else None,
                "outcome_request": outcome.request_id if outcome else None,
                "outcome": outcome.outcome_json if outcome else None,
                "outcome_created_ms": outcome.created_ms if outcome else None,
                "outcome_owner": outcome.owner if outcome else None,
                "channel": self._store.notify_channel,
            },
        )
        ts, current_fence, _notified = result.one()
        if fence is not None and current_fence != fence:
            # read under the commit lock, after any deploy that moved it has committed; raising
            # here rolls everything back, the notification included
            raise SchemaFenceMoved(current_fence)
        return int(ts)

    async def save_outcome(self, outcome: Outcome, ts: int) -> None:
        """Remember a wire mutation's answer, so a resend is answered instead of re-run."""
        if self._pending:
            await self._flush()
        await self.conn.execute(
            _INSERT_OUTCOME,
            {
                "session_id": outcome.session_id,
                "request_id": outcome.request_id,
                "ts": ts,
                "outcome": outcome.outcome_json,
                "created_ms": outcome.created_ms,
                "owner": outcome.owner,
            },
        )

    def _check_finished(self) -> None:
        """Refuse to commit a transaction whose writes have no log rows: the log is the truth."""
        if self._log and not self._committed:
            raise StorageError("a writer wrote documents but never called commit()")


class MutationWriter(StoreReader):
    """A mutation's transaction under optimistic concurrency (``storage/occ.py``): it reads at
    one snapshot and buffers its writes, which its own reads see laid over the snapshot; nothing
    reaches the database until the committer has checked its read set, after this snapshot's
    database transaction has ended (``Store.mutation``, ``Store.commit``).

    The snapshot is opened by the first read: a mutation that only inserts never opens one
    (its read set holds only the ids it made, which nobody else can write)."""

    conn: AsyncConnection

    def __init__(self, store: Store, stack: AsyncExitStack) -> None:
        super().__init__(None, None, store)  # type: ignore[arg-type]
        self._stack = stack
        self._opened = False
        self.net = NetWrites()

    async def _open(self) -> None:
        """Begin the snapshot. On SQLite learn its timestamp now; on PostgreSQL the first read
        learns it in the same statement (``_PG_FIRST_GET``, ``_pg_first_scan``)."""
        store = self._store
        self.conn = await self._stack.enter_async_context(
            store._transaction(store._read_engine, write=True)
        )
        self._opened = True
        if self._sqlite:
            self._snapshot_ts = await store._latest_ts(self.conn)

    async def _learn_ts(self) -> None:
        if not self._opened:
            await self._open()
        if self._snapshot_ts is None:
            self._snapshot_ts = await self._store._latest_ts(self.conn)

    async def _base_get(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        if self._snapshot_ts is not None:
            return await StoreReader.get(self, doc_id)
        (row,) = await self._pg_fetch(_PG_FIRST_GET, doc_id)
        self._snapshot_ts = int(row[0] or 0)
        return None if row[1] is None else (row[1], decode_doc(row[2]))

    async def _base_scan(
        self, index_name: str, key_range: KeyRange, descending: bool, limit: int
    ) -> list[tuple[bytes, dict[str, Any]]]:
        if self._snapshot_ts is not None:
            return await StoreReader.scan(
                self, index_name, key_range, descending=descending, limit=limit
            )
        lower, upper = bool(key_range.start), key_range.end is not None
        sql = _pg_first_scan(lower, upper, descending)
        bounds = (key_range.start,) * lower + (key_range.end,) * upper
        rows = await self._pg_fetch(sql, index_name, *bounds, limit)
        self._snapshot_ts = int(rows[0][0] or 0)
        found = [(bytes(r[1]), r[2]) for r in rows if r[1] is not None]
        docs = decode_docs([value for _key, value in found])
        return [(key, doc) for (key, _value), doc in zip(found, docs, strict=True)]

    @property
    def snapshot_ts(self) -> int:
        if self._snapshot_ts is None:
            raise RuntimeError("this mutation has read nothing yet (call current_ts)")
        return self._snapshot_ts

    async def current_ts(self) -> int:
        """The snapshot's timestamp (opening it if nothing was read yet)."""
        await self._learn_ts()
        return self.snapshot_ts

    # ---- writes (in memory) -----------------------------------------------------------------

    async def insert(
        self,
        table: str,
        document: dict[str, Any],
        keys: Sequence[tuple[str, bytes]],
        *,
        encoded: str | None = None,
    ) -> None:
        value = encode_doc(document) if encoded is None else encoded
        self.net.insert(table, document["_id"], value, keys)

    async def replace(
        self,
        table: str,
        document: dict[str, Any],
        old_keys: Sequence[tuple[str, bytes]],
        new_keys: Sequence[tuple[str, bytes]],
        *,
        encoded: str | None = None,
    ) -> None:
        value = encode_doc(document) if encoded is None else encoded
        self.net.replace(table, document["_id"], value, old_keys, new_keys)

    async def delete(self, table: str, doc_id: str, old_keys: Sequence[tuple[str, bytes]]) -> None:
        self.net.delete(table, doc_id, old_keys)

    # ---- reads: the snapshot, with this transaction's writes laid over it ----------------------

    async def get(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        mine = self.net.docs.get(doc_id)
        if mine is not None:
            return None if mine.value is None else (mine.table, decode_doc(mine.value))
        if not self._opened:
            await self._open()
        return await self._base_get(doc_id)

    async def scan(
        self, index_name: str, key_range: KeyRange, *, descending: bool, limit: int
    ) -> list[tuple[bytes, dict[str, Any]]]:
        if key_range.is_empty():
            return []
        if not self._opened:
            await self._open()
        own = self.net.by_index.get(index_name)
        if not own and not self.net.docs:
            return await self._base_scan(index_name, key_range, descending, limit)
        own = own or {}
        # keys this transaction removed may be among the snapshot's first ``limit``: ask for
        # that many more, so that at least ``limit`` remain when the snapshot has them
        hidden = sum(1 for k, v in own.items() if v is None and key_range.contains(k))
        rows = await self._base_scan(index_name, key_range, descending, limit + hidden)
        docs = self.net.docs
        kept: list[tuple[bytes, dict[str, Any]]] = []
        for key, doc in rows:
            if key in own:
                continue  # removed here, or added back below
            mine = docs.get(doc["_id"])
            if mine is not None:
                if mine.value is None:
                    continue
                doc = decode_doc(mine.value)
            kept.append((key, doc))
        for key, doc_id in own.items():
            if doc_id is not None and key_range.contains(key):
                value = docs[doc_id].value
                assert value is not None
                kept.append((key, decode_doc(value)))
        kept.sort(key=_first, reverse=descending)
        return kept[:limit]

    async def find_outcome(self, session_id: str, request_id: int) -> StoredOutcome | None:
        """The remembered answer to ``(session_id, request_id)`` in this snapshot. (One made
        after it is found by the commit: its row's key is unique, and the retry reads again.)"""
        if not self._opened:
            await self._open()
        if self._sqlite:
            await self._learn_ts()
            key = (session_id, request_id)
            row = await _in_worker(self.conn, _sqlite_fetchone, _SQLITE_FIND_OUTCOME, key)
        elif self._snapshot_ts is None:  # a wire mutation's first statement: learn ts with it
            (first,) = await self._pg_fetch(_PG_FIRST_OUTCOME, session_id, request_id)
            self._snapshot_ts = int(first[0] or 0)
            row = None if first[1] is None else (first[1], first[2], first[3])
        else:
            rows = await self._pg_fetch(_PG_FIND_OUTCOME, session_id, request_id)
            row = rows[0] if rows else None
        return None if row is None else StoredOutcome(int(row[0]), str(row[1]), row[2])

    def pending(
        self,
        *,
        read_set: ReadSet,
        write_set: WriteSet,
        now_ns: int,
        function_path: str | None,
        identity: str | None,
        outcome: Outcome | None = None,
        fence: int | None = None,
    ) -> PendingCommit:
        """What ``Store.commit`` needs to check and write this transaction."""
        return PendingCommit(
            snapshot_ts=self._snapshot_ts,
            read_set=read_set,
            write_set=write_set,
            write_set_json=write_set.to_json(),
            rows=self.net.rows(),
            log=self.net.log,
            now_ns=now_ns,
            function_path=function_path,
            identity=identity,
            outcome=outcome,
            fence=fence,
        )


# A mutation's first read on PostgreSQL also learns its snapshot's timestamp, in the same
# statement (one round trip fewer); sent through asyncpg itself, prepared once per connection.
_PG_FIND_OUTCOME = (
    "SELECT ts, outcome, owner FROM mutation_outcomes"
    " WHERE session_id = $1::text AND request_id = $2::bigint"
)
_PG_FIRST_OUTCOME = (
    "SELECT m.snap, o.ts, o.outcome, o.owner FROM (SELECT max(ts) AS snap FROM commits) AS m"
    " LEFT JOIN mutation_outcomes AS o ON o.session_id = $1::text AND o.request_id = $2::bigint"
)
_PG_FIRST_GET = (
    "SELECT m.snap, d.table_name, d.value FROM (SELECT max(ts) AS snap FROM commits) AS m"
    " LEFT JOIN documents AS d ON d.doc_id = $1::text"
)


@cache
def _pg_first_scan(lower: bool, upper: bool, descending: bool) -> str:
    """``_pg_scan``, with the snapshot's newest commit in every row (and in the one row of NULLs
    an empty range gives)."""
    where, limit = _pg_scan_where(lower, upper)
    order = "DESC" if descending else "ASC"
    # only constant fragments are put together here; every value is a ``$n`` parameter
    return (
        "SELECT m.snap, s.key, s.value FROM (SELECT max(ts) AS snap FROM commits) AS m"  # noqa: S608
        " LEFT JOIN LATERAL (SELECT e.key, d.value FROM index_entries AS e"
        f" JOIN documents AS d ON d.doc_id = e.doc_id WHERE {where} ORDER BY e.key {order}"
        f" LIMIT {limit}) AS s ON true ORDER BY s.key {order}"
    )


def _first(pair: tuple[bytes, Any]) -> bytes:
    return pair[0]


def _sqlite_begin(
    db: sqlite3.Connection,
    members: Sequence[PendingCommit],
    expected: int | None,
    fence: Any,
    after: int | None,
) -> tuple[list[int] | None, int, Any, list[Any]]:
    """Take the write lock (``BEGIN IMMEDIATE``). If the newest commit is still ``expected``
    and the fence still ``fence``, write ``members`` (checked already) and commit: their
    timestamps. Otherwise leave the transaction open and answer None, the newest commit, the
    fence and the write sets after ``after``."""
    if db.in_transaction:  # never left so, but a stale transaction must not swallow ours
        db.execute("ROLLBACK")
    db.execute("BEGIN IMMEDIATE")
    try:
        newest, current = db.execute(_SQLITE_NEWEST_AND_FENCE).fetchone()
        newest = int(newest or 0)
        if expected is not None and newest == expected and current == fence:
            stamps = _sqlite_commit_batch(db, members, newest)
            db.execute("COMMIT")
            return stamps, newest, current, []
        rows: list[Any] = []
        if after is not None and newest > after:
            rows = db.execute(_SQLITE_WRITE_SETS_AFTER, (after,)).fetchall()
        return None, newest, current, rows
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _sqlite_finish(
    db: sqlite3.Connection, members: Sequence[PendingCommit], newest: int
) -> list[int]:
    """Write ``members`` in the transaction ``_sqlite_begin`` left open, and commit."""
    try:
        stamps = _sqlite_commit_batch(db, members, newest)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return stamps


def _sqlite_rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


def _sqlite_commit_batch(
    db: sqlite3.Connection, members: Sequence[PendingCommit], newest: int
) -> list[int]:
    """Write each member, in order, with its own timestamp; return the timestamps."""
    stamps = []
    last = newest
    for m in members:
        rows = m.rows
        if rows.deleted_docs:
            db.executemany(_DELETE_DOCUMENT.sqlite_sql, [(i,) for i in rows.deleted_docs])
        if rows.updated_docs:
            db.executemany(_UPDATE_DOCUMENT.sqlite_sql, rows.updated_docs)
        if len(rows.new_docs) == 1:
            db.execute(_INSERT_DOCUMENT.sqlite_sql, rows.new_docs[0])
        elif rows.new_docs:
            db.executemany(_INSERT_DOCUMENT.sqlite_sql, rows.new_docs)
        if rows.deleted_keys:
            db.executemany(_DELETE_KEY.sqlite_sql, rows.deleted_keys)
        if rows.new_keys:
            db.executemany(_INSERT_KEY.sqlite_sql, rows.new_keys)
        ts = max(m.now_ns, last + 1)
        db.execute(_SQLITE_INSERT_COMMIT, (ts, m.function_path, m.identity, m.write_set_json))
        if len(m.log) == 1:
            db.execute(_SQLITE_INSERT_LOG, (ts, 0, *m.log[0]))
        else:
            db.executemany(_SQLITE_INSERT_LOG, [(ts, seq, *row) for seq, row in enumerate(m.log)])
        if m.outcome is not None:
            db.execute(_SQLITE_INSERT_OUTCOME, _outcome_row(m.outcome, ts))
        stamps.append(ts)
        last = ts
    return stamps


_SQLITE_WRITE_SETS_AFTER = "SELECT ts, write_set FROM commits WHERE ts > ? ORDER BY ts"
_SQLITE_NEWEST_AND_FENCE = "SELECT (SELECT max(ts) FROM commits), (SELECT value FROM schema_fence)"
_PG_LOCK = text(PG_LOCK)
_PG_WRITE_SETS_AFTER = text(PG_WRITE_SETS_AFTER)
_PG_GUARDED = {False: text(PG_GUARDED_ONE), True: text(PG_GUARDED_BATCH)}  # by "several"
_PG_WRITE_SETS_BETWEEN = (
    "SELECT ts, write_set FROM commits WHERE ts > $1::bigint AND ts <= $2::bigint ORDER BY ts"
)
# How many times a batch checked before the lock is sent again after another process's commit
# failed its guard, before it takes the lock first.
GUARD_TRIES = 3
# How long after a retry met another process's commit on a key that key's turns are taken
# across processes (``Store.note_met_elsewhere``).
ELSEWHERE_SECONDS = 10.0


def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its ``:name`` parameters as asyncpg's ``$n``, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return re.sub(r"(?<![:\w]):([a-z_]+)\b", number, sql), tuple(names)


_PG_GUARDED_SQL = {False: _positional(PG_GUARDED_ONE), True: _positional(PG_GUARDED_BATCH)}
_PG_TURN_LOCK = text("SELECT pg_advisory_lock(CAST(:ns AS integer), CAST(:k AS integer))")
_PG_TURN_UNLOCK = text("SELECT pg_advisory_unlock(CAST(:ns AS integer), CAST(:k AS integer))")


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2s(key.encode(), digest_size=4).digest(), "big", signed=True)


def _sqlite_execute(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    db.execute(sql, params)


MAX_BATCH = 64


@dataclass
class CommitStats:
    """What the committer has done since the store opened (for benchmarks and the log)."""

    commits: int = 0
    batches: int = 0
    conflicts: int = 0
    foreign_reads: int = 0


class Store:
    """One database, shared by every function execution in this process."""

    def __init__(self, url: str, *, pg_schema: str | None = None) -> None:
        self.url = url
        self.kind = kind_of(url)
        self.pg_schema = pg_schema
        self.engine: AsyncEngine = create_db_engine(url, pg_schema=pg_schema)
        # Engines that share ``engine``'s pool but open their transactions the way readers and
        # writers need (set once here, rather than by ``execution_options`` on every connection).
        self._read_engine: AsyncEngine
        self._write_engine: AsyncEngine
        if self.kind is DatabaseKind.SQLITE:
            self._read_engine = self.engine
            self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self._read_engine = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            self._write_engine = self.engine.execution_options(isolation_level="SERIALIZABLE")
        self._write_lock = asyncio.Lock()
        # the committer (``commit``): its own connections, so that it never waits in the pool
        # behind the mutations whose commits it is to make
        # (on SQLite a plain ``sqlite3`` connection of its own: ``_on_sqlite``)
        self._commit_engine = (
            self.engine
            if self.kind is DatabaseKind.SQLITE
            else create_db_engine(url, pg_schema=pg_schema, pool_size=2)
        )
        self._sqlite_db: sqlite3.Connection | None = None
        self._autocommit_engine = self._commit_engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self._queue: list[PendingCommit] = []
        self._drainer: asyncio.Task[None] | None = None
        self._busy = False  # a batch is being committed (by a caller itself, or the drainer)
        self.recent = RecentWrites()
        self.commit_stats = CommitStats()
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._elsewhere: dict[str, float] = {}  # key -> when a retry last met another process
        self.health = StoreHealth()
        self.notify_channel = f"commits_{pg_schema or 'public'}"[:63]
        self._lock_key = int.from_bytes(
            hashlib.blake2s((pg_schema or "public").encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )

    @property
    def engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        """Every SQLAlchemy engine the store sends statements through (its pool, the
        committer's)."""
        return self.engine, self._commit_engine

    @property
    def commit_lock_key(self) -> int:
        """The PostgreSQL advisory lock every commit holds while it draws its timestamp."""
        return self._lock_key

    async def close(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            await asyncio.wait([self._drainer], timeout=30)
        if self._commit_engine is not self.engine:
            await self._commit_engine.dispose()
        if self._sqlite_db is not None:
            self._sqlite_db.close()
            self._sqlite_db = None
        await self.engine.dispose()

    # ---- transactions, and what their failures mean ------------------------------------------

    @asynccontextmanager
    async def _transaction(
        self, engine: AsyncEngine, *, write: bool
    ) -> AsyncIterator[AsyncConnection]:
        """One database transaction on a pooled connection; its failures mapped for callers
        (``StoreUnavailable``, ``RetryableConflict`` for a writer, else ``StorageError``) and
        told to ``health``."""
        conn = engine.connect()
        try:
            await conn.start()
        except Exception as exc:  # no connection at all: whatever the reason, out of reach
            raise self._unavailable(_describe(exc)) from exc
        try:
            async with conn.begin():
                yield conn
        except (DBAPIError, sqlite3.Error) as exc:
            raise self._failure(exc, write=write) from exc
        finally:
            await conn.close()
        self.health.succeeded()

    async def _driver_rows(self, conn: AsyncConnection, sql: str, *args: Any) -> list[Any]:
        """Rows of one statement sent through ``conn``'s asyncpg connection itself, which
        prepares it once per connection: SQLAlchemy's compile, cursor and result layers cost
        more than the round trip for the small statements a function's reads are."""
        try:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            rows: list[Any] = await driver.fetch(sql, *args)
        except _ASYNCPG_ERRORS as exc:
            raise await self._driver_failure_on(conn, exc) from exc
        return rows

    async def _driver_failure_on(self, conn: AsyncConnection, exc: BaseException) -> BaseException:
        """What an error of a statement sent through asyncpg itself means; a connection it
        found dead is taken out of the pool (SQLAlchemy only notices for its own statements)."""
        if isinstance(exc, OSError | asyncpg.InterfaceError) or unavailable_cause(exc):
            with contextlib.suppress(Exception):
                await conn.invalidate()
            # the pool's other connections went the same way, as SQLAlchemy assumes of a
            # disconnect it sees itself: start the pool afresh, or the next caller may still
            # get one that works for a moment and report the database back too soon
            self.engine.sync_engine.dispose(close=False)
            return self._unavailable(f"connection lost ({_describe(exc)})")
        state = getattr(exc, "sqlstate", None)
        if state in RETRYABLE_SQLSTATES:
            return RetryableConflict(str(state))
        if state == "23505":  # a unique key claimed concurrently (an outcome): the retry sees it
            return RetryableConflict("unique violation")
        return StorageError(_describe(exc))

    def _unavailable(self, cause: str) -> StoreUnavailable:
        self.health.failed(cause)
        if self._commit_engine is not self.engine:
            # the committer's connections may be as dead as the one that failed (SQLAlchemy
            # drops a whole pool only for a pool it saw fail): start it afresh
            self._commit_engine.sync_engine.dispose(close=False)
        return StoreUnavailable(cause)

    def _failure(self, exc: BaseException, *, write: bool) -> BaseException:
        cause = unavailable_cause(exc)
        if cause is not None:
            return self._unavailable(cause)
        mapped = classify(exc) if write else exc
        if mapped is exc:
            return StorageError(str(exc.orig if isinstance(exc, DBAPIError) else exc))
        return mapped

    async def probe(self) -> bool:
        """Whether the database answers a read within ``PROBE_TIMEOUT`` now (for readiness
        checks: ``health`` alone only knows what the last call found)."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT.total_seconds()):
                await self.latest_ts()
        except StoreUnavailable:
            return False
        except TimeoutError:
            self.health.failed(f"no answer within {PROBE_TIMEOUT.total_seconds():g} s")
            return False
        return True

    @asynccontextmanager
    async def snapshot(self, *, timestamped: bool = True) -> AsyncIterator[StoreReader]:
        """A read-only transaction at one consistent snapshot.

        ``timestamped=False`` skips the statement that learns the snapshot's timestamp, for a
        reader that never asks for ``snapshot_ts`` (a one-shot query). Raises
        ``StoreUnavailable`` when the database cannot be reached.
        """
        async with self._transaction(self._read_engine, write=False) as conn:
            ts = await self._latest_ts(conn) if timestamped else None
            yield StoreReader(conn, ts, self)

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[StoreWriter]:
        """One attempt at a serializable read-write transaction.

        Commits when the block exits normally (the caller must have called ``commit`` on the
        writer if it wrote anything); rolls back on an exception. Raises
        ``RetryableConflict`` when the attempt lost a race and may simply be run again, and
        ``StoreUnavailable`` when the database cannot be reached.
        """
        # SQLite: one writer at a time in this process (other processes wait on the file lock)
        lock = self._write_lock if self.kind is DatabaseKind.SQLITE else nullcontext()
        async with lock, self._transaction(self._write_engine, write=True) as conn:
            writer = StoreWriter(conn, self)
            yield writer
            writer._check_finished()

    # ---- mutations: optimistic concurrency and the committer ---------------------------------

    @asynccontextmanager
    async def mutation(self) -> AsyncIterator[MutationWriter]:
        """A mutation's reads, at one snapshot (PostgreSQL: ``REPEATABLE READ READ ONLY``).

        Its writes stay in memory; once the block has ended (and with it the snapshot's
        database transaction), ``commit`` the ``pending()`` of the writer. Raises
        ``StoreUnavailable`` when the database cannot be reached.
        """
        async with AsyncExitStack() as stack:
            yield MutationWriter(self, stack)

    async def commit(self, member: PendingCommit, *, holding: Collection[str] = ()) -> int:
        """Commit a mutation that has run: its timestamp, or ``ReadSetConflict`` if a commit
        after its snapshot wrote what it read (nothing was written; run it again), or
        ``SchemaFenceMoved``.

        Commits wait in one queue per process; the committer takes all that are waiting (up to
        ``MAX_BATCH``) and, holding the commit lock, checks each against the commits after its
        snapshot and the members before it, then writes those that pass in one database
        transaction, each under a timestamp of its own (group commit: one lock, one fsync).

        A mutation whose read set touches a document or range that retries are lined up for
        (``turn``) joins that line instead (``holding``: the turns this attempt holds)."""
        if self._turns:
            waiting = self._line_for(member.read_set, holding)
            if waiting is not None:
                # retries that met this document or range are waiting their turn: join the
                # line rather than overtake them (a commit now would fail the one whose turn
                # it is)
                self.commit_stats.conflicts += 1
                raise ReadSetConflict(ReadConflict(f"retries waiting on {waiting}", waiting), 0)
        member.future = asyncio.get_running_loop().create_future()
        if not self._queue and not self._busy:
            # nobody is committing: commit it right here, a batch of one (no task to wake);
            # whoever queues meanwhile is drained by a task once it is done
            self._busy = True
            try:
                await self._commit_batch([member])
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                member.settle(exc)
            finally:
                if self._queue:  # still busy: the drainer takes over
                    self._drainer = asyncio.create_task(self._drain())
                else:
                    self._busy = False
            return await member.future
        self._queue.append(member)
        if not self._busy:
            self._busy = True
            self._drainer = asyncio.create_task(self._drain())
        return await member.future

    async def _drain(self) -> None:
        self._busy = True
        try:
            await self._drain_queue()
        finally:
            self._busy = False

    async def _drain_queue(self) -> None:
        while self._queue:
            batch = self._queue[:MAX_BATCH]
            del self._queue[: len(batch)]
            try:
                await self._commit_batch(batch)
            except asyncio.CancelledError:
                for m in batch + self._queue:
                    m.settle(StoreUnavailable("the store is closing"))
                raise
            except BaseException as exc:
                if len(batch) == 1 or isinstance(exc, StoreUnavailable):
                    for m in batch:
                        m.settle(exc)
                    continue
                # One member broke the batch's transaction (a unique key taken meanwhile, say):
                # nothing of it was written; commit them one by one, so only that one fails.
                for m in batch:
                    try:
                        await self._commit_batch([m])
                    except asyncio.CancelledError:
                        m.settle(StoreUnavailable("the store is closing"))
                        raise
                    except BaseException as single:
                        m.settle(single)

    async def _commit_batch(self, batch: Sequence[PendingCommit]) -> None:
        results: dict[PendingCommit, int | BaseException] = {}
        # a member that read nothing (no snapshot) has nothing to check
        needed = min((m.snapshot_ts for m in batch if m.snapshot_ts is not None), default=None)
        after = self._read_after(needed)
        if self.kind is DatabaseKind.SQLITE:
            async with self._write_lock:
                try:
                    accepted = await self._sqlite_batch(batch, after, results)
                except sqlite3.Error as exc:
                    raise self._failure(exc, write=True) from exc
                except BaseException:  # cancelled between calls: never keep the write lock
                    if self._sqlite_db is not None:
                        with contextlib.suppress(Exception):
                            _sqlite_rollback(self._sqlite_db)
                    raise
                self.health.succeeded()
        else:
            optimistic = await self._pg_optimistic(batch, after, results)
            if optimistic is not None:
                accepted = optimistic
            else:
                results.clear()
                after = self._read_after(needed)  # it may have learned commits meanwhile
                async with self._transaction(self._commit_engine, write=True) as conn:
                    accepted = await self._pg_locked(conn, batch, after, results)
        # committed: later batches check against these too
        for m in accepted:
            ts = results[m]
            assert isinstance(ts, int)
            self.recent.append(ts, m.write_set)
        self.recent.trim()
        self.commit_stats.batches += 1
        self.commit_stats.commits += len(accepted)
        for m in batch:
            m.settle(results[m])

    async def _sqlite_batch(
        self,
        batch: Sequence[PendingCommit],
        after: int | None,
        results: dict[PendingCommit, int | BaseException],
    ) -> list[PendingCommit]:
        """The batch on SQLite, in one call when this process knows every commit (checked
        before the lock, written under it if the newest commit is still the one the check
        assumed); else lock, learn, check and write in three (``_on_sqlite``)."""
        through = self.recent.through
        fence = batch[0].fence
        if through is not None and after == through and all(m.fence == fence for m in batch):
            accepted = self._validate(batch, fence, results, count=False)
            if not accepted:
                self.commit_stats.conflicts += len(batch)
                return []
            stamps, newest, current, rows = await self._on_sqlite(
                _sqlite_begin, accepted, through, fence, after
            )
            if stamps is not None:
                self.commit_stats.conflicts += len(batch) - len(accepted)
                results.update(zip(accepted, stamps, strict=True))
                return accepted
            results.clear()
        else:
            _, newest, current, rows = await self._on_sqlite(_sqlite_begin, [], None, None, after)
        try:
            self._learn(after, newest, rows)
            accepted = self._validate(batch, current, results)
        except BaseException:
            await self._on_sqlite(_sqlite_rollback)
            raise
        stamps = await self._on_sqlite(_sqlite_finish, accepted, newest)
        results.update(zip(accepted, stamps, strict=True))
        return accepted

    async def _on_sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on the committer's own ``sqlite3`` connection, called
        right here on the event loop: a commit in WAL mode with ``synchronous=NORMAL`` is a few
        page writes and no fsync, cheaper than the two thread switches of a call through
        aiosqlite (which, on a busy machine, cost more than the commit itself). If the file's
        write lock is held (another process, a maintenance batch of our own is excluded by
        ``_write_lock``), it is not waited for here: the call is made again on a thread, with the
        usual busy timeout (every function passed rolls back what it began when it fails)."""
        db = self._sqlite_db
        if db is None:
            path = make_url(self.url).database
            db = sqlite3.connect(path or "", isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=0")
            self._sqlite_db = db
        try:
            return fn(db, *args)
        except sqlite3.OperationalError as exc:
            text_of = str(exc).lower()
            if "locked" not in text_of and "busy" not in text_of:
                raise
        db.execute("PRAGMA busy_timeout=10000")
        try:
            return await asyncio.to_thread(fn, db, *args)
        finally:
            db.execute("PRAGMA busy_timeout=0")

    def _checkable(self, batch: Sequence[PendingCommit], after: int | None) -> bool:
        """Whether ``batch`` can be checked before the lock: this process knows every commit
        up to the newest it has seen, and the members follow one deployed schema."""
        fence = batch[0].fence
        return (
            self.recent.through is not None
            and after == self.recent.through
            and fence is not None
            and all(m.fence == fence for m in batch)
        )

    async def _pg_optimistic(
        self,
        batch: Sequence[PendingCommit],
        after: int | None,
        results: dict[PendingCommit, int | BaseException],
    ) -> list[PendingCommit] | None:
        """The batch checked before the lock and written by one statement (``PG_GUARDED_BATCH``:
        no ``BEGIN``, no ``COMMIT``; the lock lasts as long as the statement), one round trip
        in all, whatever the batch's size. If another process committed since the newest commit
        this process knows, the guard fails and nothing is written: its write sets are read
        (without the lock), the members checked against them, and the statement sent again.
        None when that does not apply, or after ``GUARD_TRIES`` failed guards (the caller
        then takes the lock first); the members rejected are counted only when it applies."""
        if not self._checkable(batch, after):
            return None
        fence = batch[0].fence
        pending: Sequence[PendingCommit] = batch
        async with self._transaction(self._autocommit_engine, write=True) as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            for _ in range(GUARD_TRIES):
                through = self.recent.through
                assert through is not None
                accepted = self._validate(pending, fence, results, count=False)
                if not accepted:
                    break
                stamps = batch_stamps(accepted, through)
                params = pg_batch_params(accepted, stamps, self.notify_channel)
                params.update(lock_key=self._lock_key, expected=through, fence=fence)
                sql, names = _PG_GUARDED_SQL[len(accepted) > 1]
                values = [params[name] for name in names]
                rows: Sequence[Any] = ()
                try:  # through asyncpg itself: SQLAlchemy's handling of 30 parameters costs more
                    newest, now_fence, last = await driver.fetchrow(sql, *values)
                    if last is None and now_fence == fence:
                        rows = await driver.fetch(_PG_WRITE_SETS_BETWEEN, through, newest)
                except _ASYNCPG_ERRORS as exc:
                    raise await self._driver_failure_on(conn, exc) from exc
                if last is not None:
                    results.update(zip(accepted, stamps, strict=True))
                    break
                if now_fence != fence:  # a deploy moved the fence: checked under the lock
                    return None
                self._learn(through, int(newest or 0), rows)
                pending = accepted
            else:
                return None
        self.commit_stats.conflicts += len(batch) - len(accepted)
        return accepted

    async def _pg_locked(
        self,
        conn: AsyncConnection,
        batch: Sequence[PendingCommit],
        after: int | None,
        results: dict[PendingCommit, int | BaseException],
    ) -> list[PendingCommit]:
        """The batch on PostgreSQL inside its transaction, the lock first: learn the commits
        after ``after`` this process does not know, check, write; the members written."""
        lock = await conn.execute(_PG_LOCK, {"lock_key": self._lock_key})
        newest, fence = lock.one()
        newest = int(newest or 0)
        rows: Sequence[Any] = []
        if after is not None and newest > after:
            rows = (await conn.execute(_PG_WRITE_SETS_AFTER, {"after": after})).all()
        self._learn(after, newest, rows)
        accepted = self._validate(batch, fence, results)
        if accepted:
            stamps = batch_stamps(accepted, newest)
            params = pg_batch_params(accepted, stamps, self.notify_channel)
            params.update(lock_key=self._lock_key, expected=newest, fence=fence)
            statement = _PG_GUARDED[len(accepted) > 1]
            _newest, _fence, last = (await conn.execute(statement, params)).one()
            assert last is not None, "the guard holds: this transaction holds the lock"
            results.update(zip(accepted, stamps, strict=True))
        return accepted

    def _read_after(self, needed: int | None) -> int | None:
        """After which timestamp the committer must read ``commits`` to check a batch whose
        oldest snapshot is ``needed`` (None: none, and nothing known yet)."""
        through = self.recent.through
        if through is not None and (needed is None or self.recent.covers(needed)):
            return through
        return needed

    def _learn(self, after: int | None, newest: int, rows: Sequence[Any]) -> None:
        """Take in the write sets read from ``commits`` under the lock: every commit in
        ``(after, newest]``."""
        if rows:
            self.commit_stats.foreign_reads += 1
        parsed = [(int(ts), WriteSet.from_json(ws)) for ts, ws in rows]
        if after is None:
            self.recent.reset(newest, [], newest)
        elif after == self.recent.through:
            self.recent.extend(parsed, max(newest, after))
        else:
            self.recent.reset(after, parsed, max(newest, after))

    def _validate(
        self,
        batch: Sequence[PendingCommit],
        fence: Any,
        results: dict[PendingCommit, int | BaseException],
        *,
        count: bool = True,
    ) -> list[PendingCommit]:
        """The members to write: those whose read set no commit after their snapshot (nor a
        member accepted before them) has written; the others get ``ReadSetConflict``."""
        accepted: list[PendingCommit] = []
        for m in batch:
            if m.fence is not None and fence != m.fence:
                results[m] = SchemaFenceMoved(fence)
                continue
            found = None
            if m.snapshot_ts is not None:
                found = self.recent.conflict(m.read_set, m.snapshot_ts)
            if found is None and m.snapshot_ts is not None:
                for prior in accepted:
                    met = m.read_set.conflict(prior.write_set)
                    if met is not None:
                        found = (0, met, False)
                        break
            if found is not None:
                self.commit_stats.conflicts += count
                results[m] = ReadSetConflict(found[1], found[0], foreign=found[2])
                continue
            accepted.append(m)
        return accepted

    async def save_outcome(self, outcome: Outcome, ts: int) -> None:
        """Remember the answer of a wire mutation that wrote nothing (under ``ts``, the newest
        commit it saw). A resend racing it finds the key taken: ``RetryableConflict``."""
        if self.kind is DatabaseKind.SQLITE:
            async with self._write_lock, self._transaction(self._write_engine, write=True) as c:
                await _in_worker(
                    c, _sqlite_execute, _SQLITE_INSERT_OUTCOME, _outcome_row(outcome, ts)
                )
            return
        async with self._transaction(self.engine, write=True) as conn:
            await conn.execute(
                _INSERT_OUTCOME,
                {
                    "session_id": outcome.session_id,
                    "request_id": outcome.request_id,
                    "ts": ts,
                    "outcome": outcome.outcome_json,
                    "created_ms": outcome.created_ms,
                    "owner": outcome.owner,
                },
            )

    def has_line(self, key: str) -> bool:
        """Whether retries are lined up (or running their turn) for ``key``."""
        return key in self._turns

    def _line_for(self, reads: ReadSet, holding: Collection[str]) -> str | None:
        """A key in ``reads``, other than those ``holding`` has the turn of, that retries are
        lined up for."""
        for doc_id in reads.ids:
            key = f"doc:{doc_id}"
            if key not in holding and key in self._turns:
                return key
        for index_name, ranges in reads.ranges.items():
            for r in ranges:
                key = f"range:{index_name}:{r.start.hex()}"
                if key not in holding and key in self._turns:
                    return key
        return None

    def note_met_elsewhere(self, key: str) -> None:
        """A retry met another process's commit on ``key``: for a while, every turn of
        ``key`` in this process is taken across processes too (not only the turns of retries
        that met the other process themselves), so the processes' lines take turns instead of
        one line's fresh attempts starving the other's."""
        if len(self._elsewhere) > 10_000:
            self._elsewhere.clear()
        self._elsewhere[key] = time.monotonic()

    def met_elsewhere(self, key: str) -> bool:
        """Whether a retry met another process's commit on ``key`` lately."""
        when = self._elsewhere.get(key)
        return when is not None and time.monotonic() - when < ELSEWHERE_SECONDS

    @asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        """Wait for the turn of ``key`` (a hot document or read range, ``ReadConflict.key``):
        one retry at a time per key, first come first served (``asyncio.Lock`` wakes its
        waiters in order), and on PostgreSQL one per key across processes too while another
        process's commits meet it (a session advisory lock, taken by the first in this
        process's line, ``note_met_elsewhere``). A retry that waits here runs once the retry
        before it has committed, instead of sleeping blindly."""
        entry = self._turns.get(key)
        if entry is None:
            entry = self._turns[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                if self.kind is DatabaseKind.SQLITE or not self.met_elsewhere(key):
                    yield  # (SQLite: the write lock already orders processes)
                    return
                ids = {"ns": self._lock_key & 0x7FFF_FFFF, "k": _key_hash(key)}
                async with self._transaction(self.engine, write=True) as conn:
                    await conn.execute(_PG_TURN_LOCK, ids)
                    try:
                        yield
                    finally:
                        await conn.execute(_PG_TURN_UNLOCK, ids)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[key]

    def write_sets_between(self, after: int, upto: int) -> list[WriteSet] | None:
        """The write sets of the commits in ``(after, upto]`` if this process knows them all
        (the sync coordinator's round then reads no log), else None."""
        return self.recent.between(after, upto)

    async def _latest_ts(self, conn: AsyncConnection) -> int:
        if self.kind is DatabaseKind.SQLITE:
            (value,) = await _in_worker(conn, _sqlite_fetchone, _LATEST_TS, ())
        else:
            ((value,),) = await self._driver_rows(conn, _LATEST_TS)
        return int(value or 0)

    async def latest_ts(self) -> int:
        async with self._transaction(self.engine, write=False) as conn:
            return await self._latest_ts(conn)

    async def commits_after(self, ts: int, limit: int = 1000) -> list[CommitRecord]:
        """Commits with a timestamp above ``ts``, oldest first (the log's tail)."""
        async with self._transaction(self.engine, write=False) as conn:
            rows = (await conn.execute(_COMMITS_AFTER.limit(limit), {"after": ts})).all()
        return [CommitRecord(int(r.ts), r.function_path, r.identity, r.write_set) for r in rows]

    async def prune_outcomes(self, older_than_ms: int) -> int:
        async with self._transaction(self.engine, write=True) as conn:
            result = await conn.execute(
                delete(mutation_outcomes).where(mutation_outcomes.c.created_ms < older_than_ms)
            )
            return int(result.rowcount or 0)
