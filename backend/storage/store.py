"""The store: snapshot reads, serializable writes, and the ordered commit log, over SQL.

How serializability and commit order are obtained (see ARCHITECTURE.md, "Known traps"):

- SQLite has one writer at a time. A writer takes the process-wide write lock and then the
  database's (``BEGIN IMMEDIATE``), so mutations execute one after another. Another process
  that holds the file's lock makes us wait (``busy_timeout``) and then retry.
- PostgreSQL runs mutations concurrently at ``SERIALIZABLE``; the database detects conflicts
  (SQLSTATE 40001/40P01) and the engine retries. The commit timestamp is drawn, just before
  commit, from a sequence while holding a transaction-scoped advisory lock that only the
  commit releases: timestamps are therefore handed out in commit order, across processes, and
  a reader that tails the log "after ts N" can never miss a later commit with a smaller ts.
- Readers use one snapshot per query (``REPEATABLE READ READ ONLY`` / a WAL read transaction)
  and learn its timestamp as the newest commit they can see: because timestamps follow commit
  order, every snapshot holds exactly the commits up to that timestamp.

Documents and index entries are written as a mutation runs (so its own reads see them); the
log rows and the commit row are written at commit, under the timestamp. All of it is one
database transaction: a crash at any instant leaves all of it or none of it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.storage.engine import DatabaseKind, create_db_engine, kind_of
from backend.storage.tables import commits, documents, index_entries, log, mutation_outcomes
from backend.values.convex_json import dumps, from_json, loads, to_json
from backend.values.index_key import KeyRange

RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}


class StorageError(Exception):
    """The database failed in a way a retry will not mend."""


class RetryableConflict(Exception):
    """The transaction lost a race (serialization failure, deadlock, busy database)."""


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def classify(exc: BaseException) -> BaseException:
    """Map a driver error to ``RetryableConflict`` when retrying can succeed."""
    if isinstance(exc, DBAPIError):
        state = _sqlstate(exc)
        if state in RETRYABLE_SQLSTATES:
            return RetryableConflict(str(state))
        if isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower():
            return RetryableConflict("database is locked")
        if isinstance(exc, IntegrityError) and state in (None, "23505"):
            # a unique key claimed concurrently (an outcome or an id): the retry will see it
            return RetryableConflict("unique violation")
    return exc


def encode_doc(document: dict[str, Any]) -> str:
    return dumps(to_json(document))


def decode_doc(text_value: str) -> dict[str, Any]:
    value = from_json(loads(text_value))
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True)
class CommitRecord:
    ts: int
    function_path: str | None
    identity: str | None
    write_set_json: str


@dataclass(frozen=True)
class LogEntry:
    table: str
    doc_id: str
    value: dict[str, Any] | None  # None: deleted


class StoreReader:
    """Reads at one snapshot, inside one database transaction."""

    def __init__(self, conn: AsyncConnection, snapshot_ts: int) -> None:
        self.conn = conn
        self.snapshot_ts = snapshot_ts

    async def get(self, doc_id: str) -> tuple[str, dict[str, Any]] | None:
        row = (
            await self.conn.execute(
                select(documents.c.table_name, documents.c.value).where(
                    documents.c.doc_id == doc_id
                )
            )
        ).first()
        return None if row is None else (row.table_name, decode_doc(row.value))

    async def scan(
        self, index_name: str, key_range: KeyRange, *, descending: bool, limit: int
    ) -> list[tuple[bytes, dict[str, Any]]]:
        """Up to ``limit`` (key, document) pairs of one index within ``key_range``, in order."""
        if key_range.is_empty():
            return []
        conditions = [index_entries.c.index_name == index_name]
        if key_range.start:
            conditions.append(index_entries.c.key >= key_range.start)
        if key_range.end is not None:
            conditions.append(index_entries.c.key < key_range.end)
        order = index_entries.c.key.desc() if descending else index_entries.c.key.asc()
        statement = (
            select(index_entries.c.key, documents.c.value)
            .join(documents, documents.c.doc_id == index_entries.c.doc_id)
            .where(and_(*conditions))
            .order_by(order)
            .limit(limit)
        )
        rows = (await self.conn.execute(statement)).all()
        return [(bytes(row.key), decode_doc(row.value)) for row in rows]

    async def commits_after(self, after_ts: int) -> list[CommitRecord]:
        """The commits in this snapshot newer than ``after_ts``, oldest first."""
        rows = (
            await self.conn.execute(
                select(commits).where(commits.c.ts > after_ts).order_by(commits.c.ts)
            )
        ).all()
        return [CommitRecord(int(r.ts), r.function_path, r.identity, r.write_set) for r in rows]


class StoreWriter(StoreReader):
    """A serializable read-write transaction. Writes become visible only if ``commit`` runs."""

    def __init__(self, conn: AsyncConnection, store: Store) -> None:
        super().__init__(conn, 0)
        self._store = store
        self._log: list[LogEntry] = []

    async def insert(
        self, table: str, document: dict[str, Any], keys: Sequence[tuple[str, bytes]]
    ) -> None:
        await self.conn.execute(
            insert(documents).values(
                doc_id=document["_id"], table_name=table, value=encode_doc(document)
            )
        )
        await self._insert_keys(document["_id"], keys)
        self._log.append(LogEntry(table, document["_id"], document))

    async def replace(
        self,
        table: str,
        document: dict[str, Any],
        old_keys: Sequence[tuple[str, bytes]],
        new_keys: Sequence[tuple[str, bytes]],
    ) -> None:
        await self.conn.execute(
            update(documents)
            .where(documents.c.doc_id == document["_id"])
            .values(value=encode_doc(document))
        )
        changed_old = [k for k in old_keys if k not in new_keys]
        changed_new = [k for k in new_keys if k not in old_keys]
        await self._delete_keys(changed_old)
        await self._insert_keys(document["_id"], changed_new)
        self._log.append(LogEntry(table, document["_id"], document))

    async def delete(self, table: str, doc_id: str, old_keys: Sequence[tuple[str, bytes]]) -> None:
        await self.conn.execute(delete(documents).where(documents.c.doc_id == doc_id))
        await self._delete_keys(old_keys)
        self._log.append(LogEntry(table, doc_id, None))

    async def _insert_keys(self, doc_id: str, keys: Sequence[tuple[str, bytes]]) -> None:
        if keys:
            await self.conn.execute(
                insert(index_entries),
                [{"index_name": n, "key": k, "doc_id": doc_id} for n, k in keys],
            )

    async def _delete_keys(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if keys:
            await self.conn.execute(
                delete(index_entries).where(
                    and_(
                        index_entries.c.index_name == bindparam("n"),
                        index_entries.c.key == bindparam("k"),
                    )
                ),
                [{"n": n, "k": k} for n, k in keys],
            )

    async def find_outcome(self, session_id: str, request_id: int) -> tuple[int, str] | None:
        row = (
            await self.conn.execute(
                select(mutation_outcomes.c.ts, mutation_outcomes.c.outcome).where(
                    mutation_outcomes.c.session_id == session_id,
                    mutation_outcomes.c.request_id == request_id,
                )
            )
        ).first()
        return None if row is None else (int(row.ts), str(row.outcome))

    async def commit(
        self,
        *,
        now_ns: int,
        write_set_json: str,
        function_path: str | None,
        identity: str | None,
    ) -> int:
        """Append the log and the commit row; return the commit timestamp."""
        ts = await self._store._next_ts(self.conn, now_ns)
        await self.conn.execute(
            insert(commits).values(
                ts=ts,
                function_path=function_path,
                identity=identity,
                write_set=write_set_json,
            )
        )
        if self._log:
            await self.conn.execute(
                insert(log),
                [
                    {
                        "ts": ts,
                        "seq": seq,
                        "table_name": entry.table,
                        "doc_id": entry.doc_id,
                        "value": None if entry.value is None else encode_doc(entry.value),
                    }
                    for seq, entry in enumerate(self._log)
                ],
            )
        return ts

    async def current_ts(self) -> int:
        """The newest commit timestamp (for an attempt that wrote nothing)."""
        return await self._store._latest_ts(self.conn)

    async def save_outcome(
        self, session_id: str, request_id: int, ts: int, outcome_json: str, created_ms: int
    ) -> None:
        """Remember a wire mutation's answer, so a resend is answered instead of re-run."""
        await self.conn.execute(
            insert(mutation_outcomes).values(
                session_id=session_id,
                request_id=request_id,
                ts=ts,
                outcome=outcome_json,
                created_ms=created_ms,
            )
        )

    @property
    def has_writes(self) -> bool:
        return bool(self._log)


class Store:
    """One database, shared by every function execution in this process."""

    def __init__(self, url: str, *, pg_schema: str | None = None) -> None:
        self.url = url
        self.kind = kind_of(url)
        self.pg_schema = pg_schema
        self.engine: AsyncEngine = create_db_engine(url, pg_schema=pg_schema)
        self._write_lock = asyncio.Lock()
        self.notify_channel = f"commits_{pg_schema or 'public'}"[:63]
        self._lock_key = int.from_bytes(
            hashlib.blake2s((pg_schema or "public").encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[StoreReader]:
        """A read-only transaction at one consistent snapshot."""
        try:
            async with self.engine.connect() as raw:
                if self.kind is DatabaseKind.POSTGRESQL:
                    conn = await raw.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                else:
                    conn = raw
                async with conn.begin():
                    ts = await self._latest_ts(conn)
                    yield StoreReader(conn, ts)
        except DBAPIError as exc:
            raise StorageError(str(exc.orig)) from exc

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[StoreWriter]:
        """One attempt at a serializable read-write transaction.

        Commits when the block exits normally (the caller must have called ``commit`` on the
        writer if it wrote anything); rolls back on an exception. Raises
        ``RetryableConflict`` when the attempt lost a race and may simply be run again.
        """
        if self.kind is DatabaseKind.SQLITE:
            async with self._write_lock, self._write_attempt("IMMEDIATE") as writer:
                yield writer
        else:
            async with self._write_attempt(None) as writer:
                yield writer

    @asynccontextmanager
    async def _write_attempt(self, sqlite_begin: str | None) -> AsyncIterator[StoreWriter]:
        try:
            async with self.engine.connect() as raw:
                if sqlite_begin is not None:
                    conn = await raw.execution_options(sqlite_begin=sqlite_begin)
                else:
                    conn = await raw.execution_options(isolation_level="SERIALIZABLE")
                async with conn.begin():
                    yield StoreWriter(conn, self)
        except DBAPIError as exc:
            mapped = classify(exc)
            if mapped is exc:
                raise StorageError(str(exc.orig)) from exc
            raise mapped from exc

    async def _next_ts(self, conn: AsyncConnection, now_ns: int) -> int:
        if self.kind is DatabaseKind.SQLITE:
            # We hold the database's write lock: nobody else can commit until we do.
            last = await self._latest_ts(conn)
            return max(now_ns, last + 1)
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._lock_key})
        # The notification is delivered only if and when this transaction commits.
        result = await conn.execute(
            text(
                "WITH t AS (SELECT setval('commit_ts_seq',"
                " GREATEST(nextval('commit_ts_seq'), :now)) AS ts)"
                " SELECT ts, pg_notify(:channel, ts::text) FROM t"
            ),
            {"now": now_ns, "channel": self.notify_channel},
        )
        return int(result.scalar_one())

    @staticmethod
    async def _latest_ts(conn: AsyncConnection) -> int:
        value = (await conn.execute(select(func.max(commits.c.ts)))).scalar()
        return int(value or 0)

    async def latest_ts(self) -> int:
        async with self.engine.connect() as conn:
            return await self._latest_ts(conn)

    async def commits_after(self, ts: int, limit: int = 1000) -> list[CommitRecord]:
        """Commits with a timestamp above ``ts``, oldest first (the log's tail)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(commits).where(commits.c.ts > ts).order_by(commits.c.ts).limit(limit)
                )
            ).all()
        return [CommitRecord(int(r.ts), r.function_path, r.identity, r.write_set) for r in rows]

    async def prune_outcomes(self, older_than_ms: int) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(mutation_outcomes).where(mutation_outcomes.c.created_ms < older_than_ms)
            )
            return int(result.rowcount or 0)
