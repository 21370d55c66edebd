"""Log compaction: drop history older than a horizon without changing what a replay yields.

For every document, the log rows at or before the horizon ``H`` are replaced by the newest of
them (replay only ever keeps a document's newest version), and a document whose newest version
at or before ``H`` is a deletion, with nothing after it, loses that row too: it is gone for
good. Rows after ``H`` are never touched, nor are ``commits`` (the audit of who changed what
when) and the projections, so ``verify-log`` keeps passing.

Why this may run beside live writers:

- Nothing can still be added at or before ``H``. ``H`` is capped at the newest commit when the
  compaction starts, and commit timestamps are handed out in commit order (see ``store.py``):
  SQLite's single writer, PostgreSQL's advisory lock held from drawing a timestamp to the
  commit. Every later commit, including one in flight, lands after ``H``, so the rows this
  module reads and deletes are settled history.
- Mutations never read ``log``, they only append to it, after ``H``. So on PostgreSQL a batch
  runs at the default READ COMMITTED: it cannot conflict with an append, and at SERIALIZABLE
  its reads of ``log`` would only make concurrent mutations more likely to fail their
  serialization checks. The only later row a batch can race with is a write to a document
  whose newest version at or before ``H`` is a deletion; ids are never reused, and even if one
  were, every row of that document up to ``H`` is gone, so a replay ends in the same state.
- On SQLite a batch is an ordinary writer of the store (``Store.writer``): the process's write
  lock, then ``BEGIN IMMEDIATE``, so it takes its turn between mutations like any other.
- An index being built by a deploy is caught up from the versions documents had since its
  build began (``storage/deploy.py``), so ``H`` is also capped at the oldest build's start.

The work is done in batches of documents (``batch_docs`` ids, in id order), one short
transaction each, so neither database holds its locks for long; a batch that loses a race is
run again (each is idempotent), and so is the whole compaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    Executable,
    Exists,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.storage.database import DatabaseKind
from backend.storage.scan import batch_end
from backend.storage.store import RetryableConflict, StorageError, Store, classify
from backend.storage.tables import log, schema_indexes

BATCH_DOCS = 5000
_ATTEMPTS = 5


@dataclass(frozen=True)
class CompactionReport:
    horizon_ts: int  # the horizon applied: the one asked for, capped at the newest commit
    rows_removed: int
    documents_affected: int


def horizon_for(latest_ts: int, keep: timedelta) -> int:
    """The horizon that keeps ``keep`` of history before the commit at ``latest_ts`` (ns)."""
    return latest_ts - keep // timedelta(microseconds=1) * 1000


# ---- statements, built once -------------------------------------------------------------------
# A batch covers the documents with ids in (after, last], where ``last`` is the batch_docs-th
# distinct id past ``after`` among those with rows at or before the horizon. Every statement
# reads ``log`` through ``log_by_doc`` (doc_id, ts) over that range alone, whatever the planner
# knows of the table (``storage/scan.py``; a test reads the plans on a never-analyzed table).

_BATCH_END = batch_end(log.c.doc_id, log.c.ts <= bindparam("horizon"))
_in_batch = and_(
    log.c.doc_id > bindparam("after"),
    log.c.doc_id <= bindparam("last"),
    log.c.ts <= bindparam("horizon"),
)

_other = log.alias("other")


def _later(than_horizon: bool) -> Exists:
    """A row of the same document after the outer one (and, if asked, at or before ``H``).

    The batch's range is repeated on the inner rows although ``doc_id`` equality implies it:
    it lets a planner that chose a join rather than a probe per row read them by the index."""
    conditions = [
        _other.c.doc_id == log.c.doc_id,
        _other.c.doc_id > bindparam("after"),
        _other.c.doc_id <= bindparam("last"),
        or_(_other.c.ts > log.c.ts, and_(_other.c.ts == log.c.ts, _other.c.seq > log.c.seq)),
    ]
    if than_horizon:
        conditions.append(_other.c.ts <= bindparam("horizon"))
    return exists().where(*conditions)


# The documents of the batch with more than one version at or before H (from the index alone).
_SUPERSEDING = select(log.c.doc_id).where(_in_batch).group_by(log.c.doc_id).having(func.count() > 1)
# Every version at or before H that a newer one at or before H supersedes. Run first: what is
# left at or before H is then each document's newest version there. (Counted by ``rowcount``,
# not returned: one busy document can have millions of them.)
_DROP_SUPERSEDED = delete(log).where(_in_batch, _later(True))
# ... and that version, when it is a deletion nothing came after (at most one per document).
_DROP_GONE = (
    delete(log).where(_in_batch, log.c.value.is_(None), ~_later(False)).returning(log.c.doc_id)
)

# What a batch runs, in order (a test reads their plans on a table the planner knows nothing of).
BATCH_STATEMENTS: dict[str, Executable] = {
    "batch end": _BATCH_END,
    "superseding": _SUPERSEDING,
    "drop superseded": _DROP_SUPERSEDED,
    "drop gone": _DROP_GONE,
}


async def compact_log(
    store: Store, *, horizon_ts: int, batch_docs: int = BATCH_DOCS
) -> CompactionReport:
    """Remove the history at or before ``horizon_ts`` that a replay of the log does not need.

    ``horizon_ts`` is capped at the newest commit (see the module docstring). Raises
    ``RetryableConflict`` if a batch keeps losing races and ``StorageError`` if the database
    fails; what was removed until then stays removed, and running the compaction again
    finishes the job.
    """
    if batch_docs < 1:
        raise ValueError("batch_docs must be at least 1")
    horizon = min(horizon_ts, await store.latest_ts(), await _oldest_build(store))
    rows = documents = 0
    after = ""  # ids are never empty: every id sorts after this
    while True:
        params = {"horizon": horizon, "after": after, "batch": batch_docs}
        batch = await _retrying(store, params)
        if batch is None:
            break
        rows += batch.rows_removed
        documents += batch.documents_affected  # batches cover disjoint ranges of ids
        after = batch.last_id
    return CompactionReport(horizon, rows, documents)


async def _oldest_build(store: Store) -> int:
    """The start of the oldest index build in progress (a deploy still needs the log since)."""
    async with store.engine.connect() as conn:
        started = (
            await conn.execute(
                select(func.min(schema_indexes.c.started_ts)).where(
                    schema_indexes.c.state == "building"
                )
            )
        ).scalar()
    return int(started) if started is not None else 2**63 - 1


@dataclass(frozen=True)
class _Batch:
    last_id: str
    rows_removed: int
    documents_affected: int


async def _retrying(store: Store, params: dict[str, object]) -> _Batch | None:
    for attempt in range(_ATTEMPTS):
        try:
            async with _maintenance(store) as conn:
                return await _compact_batch(conn, params)
        except RetryableConflict:
            if attempt == _ATTEMPTS - 1:
                raise
        except DBAPIError as exc:  # PostgreSQL (SQLite's writer maps its errors itself)
            mapped = classify(exc)
            if not isinstance(mapped, RetryableConflict):
                raise StorageError(str(exc.orig)) from exc
            if attempt == _ATTEMPTS - 1:  # a deadlock with another compaction, say
                raise mapped from exc
    raise AssertionError("unreachable")


async def _compact_batch(conn: AsyncConnection, params: dict[str, object]) -> _Batch | None:
    """The next batch of documents after ``params["after"]``; None when none is left."""
    last = (await conn.execute(_BATCH_END, params)).scalar()
    if last is None:
        return None
    bounds = {"horizon": params["horizon"], "after": params["after"], "last": last}
    affected = set((await conn.execute(_SUPERSEDING, bounds)).scalars())
    superseded = (await conn.execute(_DROP_SUPERSEDED, bounds)).rowcount
    gone = (await conn.execute(_DROP_GONE, bounds)).scalars().all()
    affected.update(gone)
    return _Batch(str(last), superseded + len(gone), len(affected))


@asynccontextmanager
async def _maintenance(store: Store) -> AsyncIterator[AsyncConnection]:
    """A transaction for one batch, committed when the block exits normally."""
    if store.kind is DatabaseKind.SQLITE:
        # a writer that writes no documents and so needs no commit() or commit row
        async with store.writer() as writer:
            yield writer.conn
    else:
        async with store.engine.begin() as conn:
            yield conn
