"""Optimistic concurrency over the engine's own read sets: the pieces the store's committer uses.

A mutation runs at a snapshot (PostgreSQL: ``REPEATABLE READ READ ONLY``; SQLite: a WAL read
transaction) and buffers its writes here (``NetWrites``), folded to their net effect against
that snapshot; its reads see them (``MutationWriter`` in ``store.py`` lays them over the
snapshot). It then hands a ``PendingCommit`` to the store's committer, which, under the single
commit lock (PostgreSQL's advisory lock, SQLite's write lock), checks its read set against the
write set of every commit after its snapshot and writes it only if none meets it; otherwise the
mutation runs again, knowing where it met (``ReadConflict``). Serializability follows as in any
OCC with validation at commit: every committed mutation read exactly what the database held at
its commit timestamp, since nothing it read changed between its snapshot and its commit.

The write sets to check against come from ``RecentWrites``: the commits of the recent window, in
memory, which this process's own commits join as they are made. Commits it does not know of
(another process's, or older than the window) are read from the ``commits`` table under the
lock: the newest timestamp under the lock (PostgreSQL: the timestamp sequence, which only the
lock holder advances; SQLite: ``max(ts)`` while holding the write lock) says whether any exist.

How this relates to Convex's committer (get-convex/convex-backend, ``crates/database``):
``committer.rs`` is a single task that takes commit requests from a queue, validates each
transaction's ``ReadSet`` (``reads.rs``: the index ranges and ids it read) against the
``WriteLog`` (``write_log.rs``: the index keys written by each commit in a retention window,
in memory; a read timestamp older than the window is ``OutOfRetention`` and the transaction
retries) and then against the ``PendingWrites`` still being persisted, assigns the commit
timestamp and writes to persistence. Ours is the same design on a SQL store shared by several
processes: one committer per process drains a queue; what Convex checks against its pending
writes, ours checks against the members of the same batch validated before it; the window is
``RecentWrites``, and instead of refusing a snapshot older than the window, ours reads the
missing write sets from ``commits`` (the table Convex does not need: it has one committer per
deployment). Convex pipelines validation ahead of persistence; ours writes a whole batch at
once (one fsync; on PostgreSQL one statement, ``PG_GUARDED_BATCH``), each commit with its own
timestamp and outcome.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.storage.readset import ReadConflict, ReadSet, WriteSet

# How many recent commits' write sets the process keeps (a snapshot older than the oldest is
# checked against the ``commits`` table instead).
RECENT_COMMITS = 20_000


class RecentWrites:
    """The write sets of every commit with a timestamp in ``(floor, through]``, oldest first."""

    def __init__(self, capacity: int = RECENT_COMMITS) -> None:
        self.capacity = capacity
        self.floor: int | None = None
        self.through: int | None = None
        self._stamps: list[int] = []
        self._sets: list[WriteSet] = []
        self._mine: list[bool] = []  # made by this process (else read from ``commits``)

    def covers(self, after: int) -> bool:
        """Whether every commit after ``after`` up to ``through`` is here."""
        return self.floor is not None and self.floor <= after

    def reset(self, after: int, rows: Iterable[tuple[int, WriteSet]], through: int) -> None:
        """Start over: ``rows`` are every commit in ``(after, through]``."""
        self._stamps, self._sets, self._mine = [], [], []
        self.floor = after
        self.through = after
        self.extend(rows, through)

    def extend(self, rows: Iterable[tuple[int, WriteSet]], through: int) -> None:
        """``rows`` are every commit in ``(self.through, through]``, oldest first."""
        for ts, writes in rows:
            self._stamps.append(ts)
            self._sets.append(writes)
            self._mine.append(False)
        self.through = through

    def append(self, ts: int, writes: WriteSet) -> None:
        """A commit just made, the newest (the caller holds the commit lock)."""
        if self.through is not None and ts > self.through:
            self._stamps.append(ts)
            self._sets.append(writes)
            self._mine.append(True)
            self.through = ts

    def trim(self) -> None:
        """Forget the oldest write sets beyond ``capacity`` (once a batch is checked: a check
        needs every commit after its snapshot)."""
        extra = len(self._stamps) - self.capacity
        if extra > 0:
            self.floor = self._stamps[extra - 1]
            del self._stamps[:extra]
            del self._sets[:extra]
            del self._mine[:extra]

    def since(self, after: int) -> list[tuple[int, WriteSet]]:
        start = bisect.bisect_right(self._stamps, after)
        return list(zip(self._stamps[start:], self._sets[start:], strict=True))

    def between(self, after: int, upto: int) -> list[WriteSet] | None:
        """The write sets of the commits in ``(after, upto]``, or None if some are not known
        here (the caller reads them from the database)."""
        if not self.covers(after) or self.through is None or upto > self.through:
            return None
        lo = bisect.bisect_right(self._stamps, after)
        hi = bisect.bisect_right(self._stamps, upto)
        return self._sets[lo:hi]

    def conflict(self, reads: ReadSet, after: int) -> tuple[int, ReadConflict, bool] | None:
        """The first commit after ``after`` whose writes meet ``reads``, where, and whether
        another process made it."""
        if not self.covers(after):
            raise RuntimeError(f"the write sets after {after} are not all known")
        start = bisect.bisect_right(self._stamps, after)
        for i in range(start, len(self._stamps)):
            found = reads.conflict(self._sets[i])
            if found is not None:
                return self._stamps[i], found, not self._mine[i]
        return None

    def __len__(self) -> int:
        return len(self._stamps)


@dataclass
class _Doc:
    table: str
    existed: bool  # at the snapshot
    value: str | None  # the newest text, None once deleted


@dataclass
class _Key:
    existed: bool  # at the snapshot
    doc_id: str | None  # None once deleted


class NetWrites:
    """A mutation's writes, folded to their net effect against its snapshot.

    A document or key written several times is one row: inserted (absent at the snapshot,
    present now), updated, deleted (present then, absent now), or nothing (inserted and deleted
    again). Every write but an insert of a new id follows a read of the same document (a
    patch, replace or delete reads it first), so a document or index key that existed is known
    to have existed. ``log`` keeps every version in order: the log is the truth, not the net.
    """

    def __init__(self) -> None:
        self.docs: dict[str, _Doc] = {}
        self.keys: dict[tuple[str, bytes], _Key] = {}
        self.by_index: dict[str, dict[bytes, str | None]] = {}
        self.log: list[tuple[str, str, str | None]] = []

    def _doc(self, table: str, doc_id: str, value: str | None, *, new: bool) -> None:
        found = self.docs.get(doc_id)
        if found is None:
            self.docs[doc_id] = _Doc(table, not new, value)
        else:
            found.value = value
        self.log.append((table, doc_id, value))

    def _key(self, name: str, key: bytes, doc_id: str | None) -> None:
        found = self.keys.get((name, key))
        if found is None:
            self.keys[(name, key)] = _Key(doc_id is None, doc_id)
        else:
            found.doc_id = doc_id
        self.by_index.setdefault(name, {})[key] = doc_id

    def insert(
        self, table: str, doc_id: str, value: str, keys: Sequence[tuple[str, bytes]]
    ) -> None:
        self._doc(table, doc_id, value, new=True)
        for name, key in keys:
            self._key(name, key, doc_id)

    def replace(
        self,
        table: str,
        doc_id: str,
        value: str,
        old_keys: Sequence[tuple[str, bytes]],
        new_keys: Sequence[tuple[str, bytes]],
    ) -> None:
        self._doc(table, doc_id, value, new=False)
        for name, key in old_keys:
            if (name, key) not in new_keys:
                self._key(name, key, None)
        for name, key in new_keys:
            if (name, key) not in old_keys:
                self._key(name, key, doc_id)

    def delete(self, table: str, doc_id: str, old_keys: Sequence[tuple[str, bytes]]) -> None:
        self._doc(table, doc_id, None, new=False)
        for name, key in old_keys:
            self._key(name, key, None)

    def rows(self) -> SqlRows:
        out = SqlRows()
        for doc_id, doc in self.docs.items():
            if doc.existed and doc.value is None:
                out.deleted_docs.append(doc_id)
            elif doc.existed:
                assert doc.value is not None
                out.updated_docs.append((doc.value, doc_id))
            elif doc.value is not None:
                out.new_docs.append((doc_id, doc.table, doc.value))
        for (name, key), entry in self.keys.items():
            if entry.existed and entry.doc_id is None:
                out.deleted_keys.append((name, key))
            elif not entry.existed and entry.doc_id is not None:
                out.new_keys.append((name, key, entry.doc_id))
        return out


@dataclass
class SqlRows:
    """The rows a commit writes to the projections (documents and index entries)."""

    new_docs: list[tuple[str, str, str]] = field(default_factory=list)  # id, table, value
    updated_docs: list[tuple[str, str]] = field(default_factory=list)  # value, id
    deleted_docs: list[str] = field(default_factory=list)
    new_keys: list[tuple[str, bytes, str]] = field(default_factory=list)  # index, key, id
    deleted_keys: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(eq=False)
class PendingCommit:
    """A mutation that has run and waits for the committer: what it read, at which snapshot,
    and what it writes."""

    snapshot_ts: int | None  # None: it read nothing from the database
    read_set: ReadSet
    write_set: WriteSet
    write_set_json: str
    rows: SqlRows
    log: list[tuple[str, str, str | None]]
    now_ns: int
    function_path: str | None
    identity: str | None
    outcome: Any  # ``store.Outcome`` or None
    fence: int | None
    future: asyncio.Future[int] | None = None

    def settle(self, result: int | BaseException) -> None:
        future = self.future
        if future is None or future.done():
            return  # its caller stopped waiting (cancelled)
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


# The statement that opens a PostgreSQL commit batch: the commit lock, then (only once it is
# held: ``stamp`` selects from ``lock``) the newest timestamp drawn and the schema fence.
# Sequences are not transactional: under the lock, the last value drawn is the newest commit's
# timestamp (or one rolled back), whatever this statement's snapshot.
PG_LOCK = """
WITH lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(CAST(:lock_key AS bigint))
)
SELECT pg_sequence_last_value('commit_ts_seq') AS newest,
    pg_sequence_last_value('schema_fence_seq') AS fence
FROM lock
"""

# The rows every commit records beside its projections, as CTEs over ``stamp`` (its
# timestamp): the commit row, the log rows, and a wire mutation's outcome. Shared by every
# commit statement (here and in ``store.py``), which splice it in verbatim.
PG_RECORD_CTES = """new_commit AS (
    INSERT INTO commits (ts, function_path, identity, write_set)
    SELECT ts, CAST(:function_path AS text), CAST(:identity AS text), CAST(:write_set AS text)
    FROM stamp
),
new_log AS (
    INSERT INTO log (ts, seq, table_name, doc_id, value)
    SELECT stamp.ts, e.seq, e.table_name, e.doc_id, e.value
    FROM stamp, unnest(
        CAST(:log_seqs AS integer[]), CAST(:log_tables AS text[]),
        CAST(:log_doc_ids AS text[]), CAST(:log_values AS text[])
    ) AS e (seq, table_name, doc_id, value)
),
new_outcome AS (
    INSERT INTO mutation_outcomes (session_id, request_id, ts, outcome, created_ms, owner)
    SELECT o.session_id, o.request_id, stamp.ts, o.outcome, o.created_ms, o.owner
    FROM stamp, (VALUES (
        CAST(:outcome_session AS text), CAST(:outcome_request AS bigint),
        CAST(:outcome AS text), CAST(:outcome_created_ms AS bigint), CAST(:outcome_owner AS text)
    )) AS o (session_id, request_id, outcome, created_ms, owner)
    WHERE o.session_id IS NOT NULL
)"""

PG_WRITE_SETS_AFTER = "SELECT ts, write_set FROM commits WHERE ts > :after ORDER BY ts"


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the arrays the commit statement unnests)."""
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


class OverlappingWrites(Exception):
    """Two members of a batch write one document (``pg_batch_params``)."""


def batch_stamps(members: Sequence[PendingCommit], newest: int) -> list[int]:
    """The timestamps ``members`` commit at, in order, after ``newest`` (the newest drawn):
    what ``setval(GREATEST(nextval(...), now))`` would draw for each in turn. Only the lock
    holder advances the sequence, so under the lock (``PG_GUARDED_BATCH``'s guard checks that
    the newest is still ``newest``) these are exactly the next timestamps."""
    stamps: list[int] = []
    last = newest
    for m in members:
        last = max(last + 1, m.now_ns)
        stamps.append(last)
    return stamps


def pg_batch_params(
    members: Sequence[PendingCommit], stamps: Sequence[int], channel: str
) -> dict[str, Any]:
    """The parameters of ``PG_GUARDED_BATCH`` for ``members`` committing at ``stamps``, or of
    ``PG_GUARDED_ONE`` for a batch of one (without the lock, ``:expected`` and ``:fence``).

    No two members may write one document: one statement cannot update a row twice. Members
    of a validated batch never do (every write reads its document first, so a member writing
    what an earlier one wrote has met it and been refused); if they did, ``OverlappingWrites``
    breaks the batch before anything is sent, and the committer writes its members one by one.
    """
    several = len(members) > 1
    if several:
        written = [doc_id for m in members for doc_id in m.write_set.ids]
        if len(set(written)) != len(written):
            raise OverlappingWrites("two commits of one batch write the same document")
    new_docs: list[tuple[str, str, str]] = []
    updated_docs: list[tuple[str, str]] = []
    deleted_docs: list[str] = []
    new_keys: list[tuple[str, bytes, str]] = []
    deleted_keys: list[tuple[str, bytes]] = []
    log: list[tuple[int, int, str, str, str | None]] = []
    for m, ts in zip(members, stamps, strict=True):
        rows = m.rows
        new_docs += rows.new_docs
        updated_docs += rows.updated_docs
        deleted_docs += rows.deleted_docs
        new_keys += rows.new_keys
        deleted_keys += rows.deleted_keys
        log += [(ts, seq, *entry) for seq, entry in enumerate(m.log)]
    doc_ids, doc_tables, doc_values = columns(new_docs, 3)
    changed_values, changed_ids = columns(updated_docs, 2)
    gone_key_indexes, gone_key_keys = columns(deleted_keys, 2)
    key_indexes, key_keys, key_doc_ids = columns(new_keys, 3)
    log_ts, log_seqs, log_tables, log_doc_ids, log_values = columns(log, 5)
    params: dict[str, Any] = {
        "last_ts": stamps[-1],
        "gone_ids": deleted_docs,
        "changed_values": changed_values,
        "changed_ids": changed_ids,
        "doc_ids": doc_ids,
        "doc_tables": doc_tables,
        "doc_values": doc_values,
        "gone_key_indexes": gone_key_indexes,
        "gone_key_keys": gone_key_keys,
        "key_indexes": key_indexes,
        "key_keys": key_keys,
        "key_doc_ids": key_doc_ids,
        "log_seqs": log_seqs,
        "log_tables": log_tables,
        "log_doc_ids": log_doc_ids,
        "log_values": log_values,
        "channel": channel,
    }
    if not several:  # ``PG_GUARDED_ONE``: the record rows as scalars, over ``stamp.ts``
        (m,) = members
        o = m.outcome
        params.update(
            function_path=m.function_path,
            identity=m.identity,
            write_set=m.write_set_json,
            outcome_session=o.session_id if o else None,
            outcome_request=o.request_id if o else None,
            outcome=o.outcome_json if o else None,
            outcome_created_ms=o.created_ms if o else None,
            outcome_owner=o.owner if o else None,
        )
        return params
    outcomes = [
        (o.session_id, o.request_id, ts, o.outcome_json, o.created_ms, o.owner)
        for m, ts in zip(members, stamps, strict=True)
        if (o := m.outcome) is not None
    ]
    o_sessions, o_requests, o_ts, o_outcomes, o_created, o_owners = columns(outcomes, 6)
    params.update(
        commit_ts=list(stamps),
        function_paths=[m.function_path for m in members],
        identities=[m.identity for m in members],
        write_sets=[m.write_set_json for m in members],
        log_ts=log_ts,
        outcome_sessions=o_sessions,
        outcome_requests=o_requests,
        outcome_ts=o_ts,
        outcomes=o_outcomes,
        outcomes_created_ms=o_created,
        outcome_owners=o_owners,
    )
    return params


# A whole batch of commits as one statement, checked before the lock: it takes the lock and
# writes only if the newest timestamp drawn is still ``:expected`` and the fence still
# ``:fence`` (every write depends on ``stamp``, which is empty otherwise). The timestamps come
# with the rows (``batch_stamps``, from ``:expected``); ``stamp`` moves the sequence to the
# last of them. It answers the newest timestamp and the fence it found, and the last timestamp
# (NULL when the guard failed: nothing was written). In autocommit the lock is released when
# the statement ends; inside a transaction that holds the lock already (``pg_advisory_xact_lock``
# is re-entrant) the guard holds by construction. One notification stands for the batch: a
# listener re-reads whatever is new, whatever the payload.
PG_GUARDED_HEAD = """lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(CAST(:lock_key AS bigint))
),
guard AS MATERIALIZED (
    SELECT pg_sequence_last_value('commit_ts_seq') AS newest,
        pg_sequence_last_value('schema_fence_seq') AS fence
    FROM lock
),
stamp AS MATERIALIZED (
    SELECT setval('commit_ts_seq', CAST(:last_ts AS bigint)) AS ts
    FROM guard
    WHERE COALESCE(guard.newest, 0) = CAST(:expected AS bigint)
        AND guard.fence IS NOT DISTINCT FROM CAST(:fence AS bigint)
),
gone_documents AS (
    DELETE FROM documents USING stamp WHERE doc_id = ANY(CAST(:gone_ids AS text[]))
),
changed_documents AS (
    UPDATE documents AS d SET value = u.value
    FROM stamp, unnest(CAST(:changed_values AS text[]), CAST(:changed_ids AS text[]))
        AS u (value, doc_id)
    WHERE d.doc_id = u.doc_id
),
new_documents AS (
    INSERT INTO documents (doc_id, table_name, value)
    SELECT n.doc_id, n.table_name, n.value FROM stamp, unnest(
        CAST(:doc_ids AS text[]), CAST(:doc_tables AS text[]), CAST(:doc_values AS text[])
    ) AS n (doc_id, table_name, value)
),
gone_keys AS (
    DELETE FROM index_entries AS e
    USING stamp, unnest(CAST(:gone_key_indexes AS text[]), CAST(:gone_key_keys AS bytea[]))
        AS g (index_name, key)
    WHERE e.index_name = g.index_name AND e.key = g.key
),
new_keys AS (
    INSERT INTO index_entries (index_name, key, doc_id)
    SELECT k.index_name, k.key, k.doc_id FROM stamp, unnest(
        CAST(:key_indexes AS text[]), CAST(:key_keys AS bytea[]), CAST(:key_doc_ids AS text[])
    ) AS k (index_name, key, doc_id)
)"""

# The record CTEs of a batch: the commit rows, the log rows and the wire outcomes of every
# member, each row carrying its member's timestamp.
PG_BATCH_RECORD_CTES = """new_commits AS (
    INSERT INTO commits (ts, function_path, identity, write_set)
    SELECT c.ts, c.function_path, c.identity, c.write_set FROM stamp, unnest(
        CAST(:commit_ts AS bigint[]), CAST(:function_paths AS text[]),
        CAST(:identities AS text[]), CAST(:write_sets AS text[])
    ) AS c (ts, function_path, identity, write_set)
),
new_log AS (
    INSERT INTO log (ts, seq, table_name, doc_id, value)
    SELECT e.ts, e.seq, e.table_name, e.doc_id, e.value FROM stamp, unnest(
        CAST(:log_ts AS bigint[]), CAST(:log_seqs AS integer[]), CAST(:log_tables AS text[]),
        CAST(:log_doc_ids AS text[]), CAST(:log_values AS text[])
    ) AS e (ts, seq, table_name, doc_id, value)
),
new_outcomes AS (
    INSERT INTO mutation_outcomes (session_id, request_id, ts, outcome, created_ms, owner)
    SELECT o.session_id, o.request_id, o.ts, o.outcome, o.created_ms, o.owner FROM stamp, unnest(
        CAST(:outcome_sessions AS text[]), CAST(:outcome_requests AS bigint[]),
        CAST(:outcome_ts AS bigint[]), CAST(:outcomes AS text[]),
        CAST(:outcomes_created_ms AS bigint[]), CAST(:outcome_owners AS text[])
    ) AS o (session_id, request_id, ts, outcome, created_ms, owner)
)"""

PG_GUARDED_TAIL = """notified AS MATERIALIZED (
    SELECT ts, pg_notify(CAST(:channel AS text), CAST(ts AS text)) FROM stamp
)
SELECT guard.newest, guard.fence, notified.ts FROM guard LEFT JOIN notified ON true"""

PG_GUARDED_BATCH = f"""
WITH {PG_GUARDED_HEAD},
{PG_BATCH_RECORD_CTES},
{PG_GUARDED_TAIL}
"""

# ``PG_GUARDED_BATCH`` for a batch of one (the usual case when nobody else commits): its
# record rows as scalars (``PG_RECORD_CTES``, over ``stamp.ts``). With the same rows unnested
# from arrays of one, sequential inserts were about a tenth slower (BENCHMARKS.md).
PG_GUARDED_ONE = f"""
WITH {PG_GUARDED_HEAD},
{PG_RECORD_CTES},
{PG_GUARDED_TAIL}
"""
