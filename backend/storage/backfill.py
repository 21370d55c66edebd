"""Building an index from the documents: the scan, in batches, and the catch-up from the log.

Both are steps of a deploy (``deploy.py`` says how they fit together and why it is sound):

- **scan** (``scan_into``) reads a table's documents in batches, through its ready
  ``by_creation_time`` index (or every document, on a first deploy), and writes their keys in
  the new indexes, with the scan's position, in one short transaction per batch;
- **catch-up** (``CatchUp``) replays the commits made since the build began: their write sets
  name every document written meanwhile, and for each one the keys of every version it had
  since (from ``log``) are deleted and the key of its current version written. The same pass
  checks those documents against the new schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncpg.exceptions import UniqueViolationError
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from backend.schema_definition import IndexDef, Schema
from backend.storage.database import DatabaseKind
from backend.storage.deployment import DeployedIndex
from backend.storage.store import Store, _in_worker, decode_docs
from backend.values.convex_json import decode_stored
from backend.values.ids import table_tag

PROGRESS_ABOVE = 5000  # a backfill or a check of more documents than this reports progress
_CATCH_UP_COMMITS = 2000  # commits read per catch-up pass
_IN_LIST = 500

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Failure:
    doc_id: str
    field: str
    reason: str


@dataclass
class BatchOptions:
    """How a deploy works through a table."""

    batch_size: int
    batch_pause: float
    progress: Progress | None
    clock: Callable[[], float]


async def count_entries(store: Store, storage: str) -> int:
    async with store.engine.connect() as conn:
        statement = text("SELECT count(*) FROM index_entries WHERE index_name = :n")
        return int((await conn.execute(statement, {"n": storage})).scalar_one())


async def all_documents(
    store: Store, batch_size: int
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """Every document, by id: (table, id, document)."""
    after = b""
    while rows := await _read_batch(store, None, after, batch_size):
        for row, document in zip(rows, decode_docs([r[3] for r in rows]), strict=True):
            yield row[2], row[1], document
        after = _position(rows[-1][0])


async def scan_index(
    store: Store, storage: str, batch_size: int
) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
    """The documents of one ready index, in batches, each read in a short transaction."""
    after = b""
    while rows := await _read_batch(store, storage, after, batch_size):
        docs = decode_docs([r[3] for r in rows])
        yield [(r[1], d) for r, d in zip(rows, docs, strict=True)]
        after = _position(rows[-1][0])


class Reporter:
    """Progress lines for long scans: at most one a second, only above ``PROGRESS_ABOVE``."""

    def __init__(self, what: str, total: int, options: BatchOptions) -> None:
        self.what = what
        self.total = total
        self.options = options
        self.started = self.last = options.clock()
        self.on = options.progress is not None and total > PROGRESS_ABOVE

    def update(self, done: int) -> None:
        now = self.options.clock()
        if self.on and now - self.last >= 1.0 and self.options.progress is not None:
            self.last = now
            share = 100 * done // max(self.total, 1)
            self.options.progress(f"{self.what}: {done:,} of {self.total:,} documents ({share}%)")

    def done(self, done: int) -> None:
        if self.on and self.options.progress is not None:
            seconds = self.options.clock() - self.started
            self.options.progress(f"{self.what}: {done:,} documents in {seconds:.1f} s")


@contextlib.asynccontextmanager
async def maintenance(store: Store) -> AsyncIterator[AsyncConnection]:
    """One short transaction of the deploy's own: on SQLite a writer of the store (its turn
    between commits), on PostgreSQL at READ COMMITTED."""
    if store.kind is DatabaseKind.SQLITE:
        async with store.writer() as writer:
            yield writer.conn
    else:
        async with store.engine.connect() as conn, conn.begin():
            yield conn


async def scan_into(
    store: Store, source: str | None, builds: Sequence[DeployedIndex], options: BatchOptions
) -> None:
    """Scan ``source`` (a ready ``by_creation_time`` index's storage, or None: every document)
    into ``builds``, a batch per transaction, keeping the position in the builds' records.

    On SQLite a batch is one call on the writer's thread: an ``INSERT ... SELECT`` that keys
    each document with a function of ours as SQLite reads it (no row comes out to Python and
    goes back in). On PostgreSQL a batch reads the documents, keys them in Python and inserts
    the keys as arrays, at READ COMMITTED. A batch's reads need not be consistent with the
    commits around it, nor with the batch's writes: the catch-up (``CatchUp``) corrects every
    document written since the build began, whenever the scan read it.

    Either way, when the table holds a good part of all documents, the documents table is
    read in its physical order (``_read_physically``), not through ``by_creation_time``."""
    cursor = min((b.cursor for b in builds if b.cursor is not None), default=b"")
    definitions: dict[str, list[IndexDef]] = {}
    for build in builds:
        definitions.setdefault(build.table, []).append(build.definition)
    storages = [b.storage for b in builds]
    if source is not None:
        total = await count_entries(store, source)
        what = f"backfilling {', '.join(storages)}"
    else:
        total = await count_documents(store)
        what = f"backfilling {len(storages)} indexes"
    reporter = Reporter(what, total, options)
    physical = await _read_physically(store, source, total)
    if physical != (cursor[:1] in (_ROWID_MARK, _PAGE_MARK)):
        cursor = b""  # an interrupted scan that read the other way: start again
    scanned = 0
    batches = (
        _sqlite_batches(store, source, cursor, options.batch_size, definitions, storages, physical)
        if store.kind is DatabaseKind.SQLITE
        else _pg_batches(store, source, cursor, options.batch_size, definitions, storages, physical)
    )
    async for count in batches:
        scanned += count
        reporter.update(scanned)
        if options.batch_pause:
            await asyncio.sleep(options.batch_pause)
    reporter.done(scanned)


# Positions of a scan in the documents' physical order: a rowid (SQLite) or a page (PostgreSQL),
# marked so as never to be taken for an index key (which starts with a type tag, 0x01-0x0a) or
# a document id (lowercase base32).
_ROWID_MARK = b"#"
_PAGE_MARK = b"@"


async def _read_physically(store: Store, source: str | None, count: int) -> bool:
    """Whether to read the documents table in its physical order (rowid, or page), keeping
    those of the table, rather than through ``by_creation_time``: sequential reads and no
    join, but every other table's documents are passed over. Worth it from a quarter of all
    documents; on PostgreSQL it needs TID range scans (version 14)."""
    async with store.engine.connect() as conn:
        if store.kind is DatabaseKind.SQLITE:
            rows = (await conn.execute(text("SELECT max(rowid) FROM documents"))).scalar()
        else:
            version = int((await conn.execute(text("SHOW server_version_num"))).scalar_one())
            if version < 140000:
                return False
            rows = (
                await conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = CAST('documents' AS regclass)")
                )
            ).scalar()
            if rows is None or rows < 0:  # never analyzed (a young, small table): count
                rows = (await conn.execute(text("SELECT count(*) FROM documents"))).scalar()
    return source is None or count * 4 >= (rows or 0)


async def _sqlite_batches(
    store: Store,
    source: str | None,
    cursor: bytes,
    limit: int,
    definitions: dict[str, list[IndexDef]],
    storages: list[str],
    physical: bool,
) -> AsyncIterator[int]:
    build = _sqlite_rowid_batch if physical else _sqlite_build_batch
    while True:
        async with store.writer() as writer:
            count, cursor, finished = await _in_worker(
                writer.conn, build, source, cursor, limit, definitions, storages
            )
        yield count
        if finished:
            return


async def _pg_batches(
    store: Store,
    source: str | None,
    cursor: bytes,
    limit: int,
    definitions: dict[str, list[IndexDef]],
    storages: list[str],
    physical: bool,
) -> AsyncIterator[int]:
    """Batches on PostgreSQL at READ COMMITTED, straight through asyncpg (SQLAlchemy's result
    rows cost as much as the read itself): read, key, then insert and move the position."""
    if physical:
        async for count in _pg_page_batches(store, cursor, limit, definitions, storages):
            yield count
        return
    while True:
        async with store.engine.connect() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            if source is None:
                rows = await raw.fetch(_PG_READ_DOCUMENTS, cursor.decode(), limit)
            else:
                rows = await raw.fetch(_PG_READ_INDEX_DOCUMENTS, source, cursor, limit)
        entries = _entries(rows, definitions, by_creation=source is not None)
        if rows:
            cursor = _position(rows[-1][0])
        await _pg_write(store, entries, cursor, len(rows) < limit, storages)
        yield len(rows)
        if len(rows) < limit:
            return


async def _pg_page_batches(
    store: Store,
    cursor: bytes,
    limit: int,
    definitions: dict[str, list[IndexDef]],
    storages: list[str],
) -> AsyncIterator[int]:
    """The documents table a range of pages at a time (a TID range scan), about ``limit``
    documents each. Every document there was when the scan began lives in a page below the
    table's size then, and one that moves since (an update) is caught up."""
    page = int.from_bytes(cursor[1:], "big") if cursor else 0
    tables = list(definitions)
    async with store.engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        pages, tuples = await raw.fetchrow(_PG_SIZE)
    per_page = tuples / pages if pages and tuples > 0 else 50.0
    step = max(1, int(limit / per_page))

    async def read(first: int) -> tuple[list[Any], int]:
        async with store.engine.connect() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            size = await raw.fetchval(_PG_PAGES_NOW)
            rows = await raw.fetch(_PG_READ_PAGES, (first, 0), (first + step, 0), tables)
            return rows, int(size)

    # The next pages are read while this batch is keyed and written (their reads need not be
    # consistent with each other: see ``scan_into``).
    reading = asyncio.ensure_future(read(page))
    while True:
        rows, size = await reading
        finished = page + step >= size
        if not finished:
            reading = asyncio.ensure_future(read(page + step))
            await asyncio.sleep(0)  # let it send its query before the keys take the thread
        entries = _entries(rows, definitions, by_creation=False)
        page += step
        await _pg_write(store, entries, _PAGE_MARK + page.to_bytes(8, "big"), finished, storages)
        yield len(rows)
        if finished:
            return


_PG_SIZE = "SELECT relpages, reltuples FROM pg_class WHERE oid = 'documents'::regclass"
_PG_PAGES_NOW = "SELECT pg_relation_size('documents') / current_setting('block_size')::bigint"
_PG_READ_PAGES = (
    "SELECT doc_id, doc_id, table_name, value FROM documents"
    " WHERE ctid >= $1::tid AND ctid < $2::tid AND table_name = ANY($3::text[])"
)


async def _pg_write(
    store: Store,
    entries: list[tuple[str, bytes, str]],
    cursor: bytes,
    finished: bool,
    storages: list[str],
) -> None:
    """Insert a batch's entries and move the position, in one transaction.

    The entries go in with a plain ``INSERT`` (``ON CONFLICT DO NOTHING`` costs a fifth more).
    An entry already there (the scan met a document twice: an update moved it to a page it had
    still to read; or an interrupted scan starts again) makes the batch go again, skipping
    those."""
    for statement in (_PG_INSERT_ENTRIES_RAW, _PG_INSERT_NEW_ENTRIES_RAW):
        try:
            async with store.engine.connect() as conn:
                raw: Any = (await conn.get_raw_connection()).driver_connection
                async with raw.transaction():
                    if entries:
                        await raw.execute(statement, *_columns(entries).values())
                    await raw.execute(_PG_MOVE_RAW, cursor, finished, storages)
            return
        except UniqueViolationError:
            if statement is _PG_INSERT_NEW_ENTRIES_RAW:
                raise


_PG_READ_INDEX_DOCUMENTS = (
    "SELECT e.key, d.doc_id, d.value FROM index_entries AS e"
    " JOIN documents AS d ON d.doc_id = e.doc_id"
    " WHERE e.index_name = $1 AND e.key > $2 ORDER BY e.key LIMIT $3"
)
_PG_READ_DOCUMENTS = (
    "SELECT doc_id, doc_id, table_name, value FROM documents WHERE doc_id > $1"
    " ORDER BY doc_id LIMIT $2"
)
_PG_INSERT_ENTRIES_RAW = (
    "INSERT INTO index_entries (index_name, key, doc_id)"
    " SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[])"
)
_PG_INSERT_NEW_ENTRIES_RAW = _PG_INSERT_ENTRIES_RAW + " ON CONFLICT DO NOTHING"
_PG_MOVE_RAW = "UPDATE schema_indexes SET cursor = $1, scanned = $2 WHERE storage = ANY($3::text[])"


async def count_documents(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM documents"))).scalar_one())


def _position(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


_SCAN_INDEX_ROWS = text(
    "SELECT e.key, d.doc_id, d.table_name, d.value FROM index_entries AS e"
    " JOIN documents AS d ON d.doc_id = e.doc_id"
    " WHERE e.index_name = :n AND e.key > :after ORDER BY e.key LIMIT :limit"
)
_SCAN_DOCUMENT_ROWS = text(
    "SELECT doc_id AS position, doc_id, table_name, value FROM documents WHERE doc_id > :after"
    " ORDER BY doc_id LIMIT :limit"
)


async def _read_batch(store: Store, source: str | None, cursor: bytes, limit: int) -> Sequence[Any]:
    """The next (position, doc_id, table, value) rows of the scan, read at READ COMMITTED."""
    async with store.engine.connect() as conn:
        if source is None:
            params: dict[str, Any] = {"after": cursor.decode(), "limit": limit}
            return (await conn.execute(_SCAN_DOCUMENT_ROWS, params)).all()
        params = {"n": source, "after": cursor, "limit": limit}
        return (await conn.execute(_SCAN_INDEX_ROWS, params)).all()


def _entries(
    rows: Sequence[Any], definitions: dict[str, list[IndexDef]], *, by_creation: bool
) -> list[tuple[str, bytes, str]]:
    """The index entries of one batch: (position, doc_id, value) rows of one table read through
    its ``by_creation_time`` index, or (doc_id, doc_id, table, value) rows of every document.

    Through ``by_creation_time``, a row's position is the encoding of its (``_creationTime``,
    ``_id``), which is how every index key ends: only the declared fields are encoded here.
    (Reading just those fields out of the JSON in SQL was tried: no faster, on either
    database, than decoding the whole document here.)"""
    if by_creation:
        ((indexes),) = definitions.values()  # one table
        docs = decode_docs([r[2] for r in rows])
        return [
            (index.qualified_name, index.key_prefix_of(d) + bytes(row[0]), row[1])
            for index in indexes
            for row, d in zip(rows, docs, strict=True)
        ]
    entries = []
    wanted = [r for r in rows if r[2] in definitions]
    for row, document in zip(wanted, decode_docs([r[3] for r in wanted]), strict=True):
        for index in definitions[row[2]]:
            entries.append((index.qualified_name, index.key_of(document), row[1]))
    return entries


def _sqlite_build_batch(
    db: sqlite3.Connection,
    source: str | None,
    cursor: bytes,
    limit: int,
    definitions: dict[str, list[IndexDef]],
    storages: list[str],
) -> tuple[int, bytes, bool]:
    """One batch on SQLite's worker thread, in the writer's transaction: find where the batch
    ends, insert every build's keys of the documents up to there, move the position."""
    if source is None:  # every document, by id
        bound = ("doc_id > ?", "doc_id <= ?")
        end_row = db.execute(
            "SELECT doc_id FROM documents WHERE doc_id > ? ORDER BY doc_id LIMIT 1 OFFSET ?",
            (cursor.decode(), limit - 1),
        ).fetchone()
        start: Any = cursor.decode()
    else:
        bound = ("e.key > ?", "e.key <= ?")
        end_row = db.execute(
            "SELECT key FROM index_entries WHERE index_name = ? AND key > ?"
            " ORDER BY key LIMIT 1 OFFSET ?",
            (source, cursor, limit - 1),
        ).fetchone()
        start = cursor
    end = None if end_row is None else end_row[0]
    where = bound[0] + ("" if end is None else f" AND {bound[1]}")
    params = (start,) if end is None else (start, end)
    count = 0
    for table, indexes in definitions.items():
        for index in indexes:
            insert = "INSERT OR IGNORE INTO index_entries (index_name, key, doc_id)"
            if source is None:  # the whole document, keyed here
                db.create_function("stepup_key", 1, _whole_key(index), deterministic=True)
                statement = (
                    f"{insert} SELECT ?, stepup_key(value), doc_id FROM documents"  # noqa: S608
                    f" WHERE table_name = ? AND {where}"
                )
                db.execute(statement, (index.qualified_name, table, *params))
            else:  # the document and its position, which ends its key
                db.create_function("stepup_key", 2, _document_key(index), deterministic=True)
                statement = (
                    f"{insert} SELECT ?, stepup_key(d.value, e.key), d.doc_id"  # noqa: S608
                    " FROM index_entries AS e JOIN documents AS d ON d.doc_id = e.doc_id"
                    f" WHERE e.index_name = ? AND {where}"
                )
                db.execute(statement, (index.qualified_name, source, *params))
            count = max(count, db.execute("SELECT changes()").fetchone()[0])
    finished = end is None
    if end is not None:
        cursor = _position(end)
    _sqlite_move(db, cursor, finished, storages)
    return (limit if end is not None else count), cursor, finished


def _sqlite_move(
    db: sqlite3.Connection, cursor: bytes, finished: bool, storages: list[str]
) -> None:
    """Record how far the scan of ``storages`` has got (in the batch's transaction)."""
    marks = ",".join("?" * len(storages))
    db.execute(
        f"UPDATE schema_indexes SET cursor = ?, scanned = ? WHERE storage IN ({marks})",  # noqa: S608
        (cursor, finished, *storages),
    )


def _sqlite_rowid_batch(
    db: sqlite3.Connection,
    source: str | None,
    cursor: bytes,
    limit: int,
    definitions: dict[str, list[IndexDef]],
    storages: list[str],
) -> tuple[int, bytes, bool]:
    """Like ``_sqlite_build_batch``, reading the documents table in rowid order: every document
    there was when the scan began keeps its rowid, and one inserted since is caught up."""
    del source  # the documents of ``definitions``' tables, wherever they are
    after = int.from_bytes(cursor[1:], "big") if cursor else 0
    # a window of rowids, not of documents: finding where ``limit`` documents end would read
    # the rows twice (most rowids are this table's, or the scan would not read this way)
    end = after + limit
    count = 0
    for table, indexes in definitions.items():
        for index in indexes:
            db.create_function("stepup_key", 1, _whole_key(index), deterministic=True)
            db.execute(
                "INSERT OR IGNORE INTO index_entries (index_name, key, doc_id)"
                " SELECT ?, stepup_key(value), doc_id FROM documents"
                " WHERE table_name = ? AND rowid > ? AND rowid <= ?",
                (index.qualified_name, table, after, end),
            )
            count = max(count, db.execute("SELECT changes()").fetchone()[0])
    (last,) = db.execute("SELECT max(rowid) FROM documents").fetchone()
    finished = last is None or end >= last
    position = _ROWID_MARK + end.to_bytes(8, "big")
    _sqlite_move(db, position, finished, storages)
    return count, position, finished


def _whole_key(index: IndexDef) -> Callable[[str], bytes]:
    key_of = index.key_of
    return lambda value: key_of(decode_stored(value))


def _document_key(index: IndexDef) -> Callable[[str, bytes], bytes]:
    prefix_of = index.key_prefix_of
    return lambda value, suffix: prefix_of(decode_stored(value)) + suffix


_PG_INSERT_ENTRIES = text(
    "INSERT INTO index_entries (index_name, key, doc_id)"
    " SELECT * FROM unnest(CAST(:names AS text[]), CAST(:keys AS bytea[]), CAST(:ids AS text[]))"
    " ON CONFLICT DO NOTHING"
)


def _columns(entries: Sequence[tuple[str, bytes, str]]) -> dict[str, list[Any]]:
    return {
        "names": [e[0] for e in entries],
        "keys": [e[1] for e in entries],
        "ids": [e[2] for e in entries],
    }


@dataclass
class CatchUp:
    """Replaying the commits since the builds began: fixes their entries, rechecks documents."""

    schema: Schema
    builds: dict[str, list[DeployedIndex]]  # by table
    check: set[str]  # tables whose documents must be valid under the new schema
    after: int  # the commits up to here are done
    late: dict[str, dict[str, Failure]] = field(default_factory=dict)  # table -> id -> failure
    started: dict[str, int] = field(default_factory=dict)  # table -> its builds' first start

    def __post_init__(self) -> None:
        self._tags = {table_tag(t): t for t in set(self.builds) | self.check}
        for table, builds in self.builds.items():
            self.started[table] = min(b.started_ts or 0 for b in builds)

    def table_of(self, doc_id: str) -> str | None:
        table = self.schema.table_of_id(doc_id)
        return table if table is not None and table_tag(table) in self._tags else None

    async def run(self, conn: AsyncConnection, kind: DatabaseKind) -> int:
        """One pass over the next commits; returns how many it read."""
        rows = (
            await conn.execute(
                text("SELECT ts, write_set FROM commits WHERE ts > :after ORDER BY ts LIMIT :n"),
                {"after": self.after, "n": _CATCH_UP_COMMITS},
            )
        ).all()
        written: dict[str, str] = {}
        for row in rows:
            for doc_id in json.loads(row.write_set)["ids"]:
                table = self.table_of(doc_id)
                if table is not None:
                    written[doc_id] = table
        for chunk in _chunks(sorted(written), _IN_LIST):
            await self._fix(conn, kind, {d: written[d] for d in chunk})
        if rows:
            self.after = int(rows[-1].ts)
        return len(rows)

    async def _fix(self, conn: AsyncConnection, kind: DatabaseKind, docs: dict[str, str]) -> None:
        ids = list(docs)
        current = {
            r.doc_id: r.value
            for r in (
                await conn.execute(
                    text("SELECT doc_id, value FROM documents WHERE doc_id IN :ids").bindparams(
                        _expanding("ids")
                    ),
                    {"ids": ids},
                )
            ).all()
        }
        decoded = dict(zip(current, decode_docs(list(current.values())), strict=True))
        for doc_id, document in decoded.items():
            table = docs[doc_id]
            if table in self.check:
                problem = self.schema.violation(table, document)
                if problem is None:
                    self.late.get(table, {}).pop(doc_id, None)
                else:
                    self.late.setdefault(table, {})[doc_id] = Failure(doc_id, *problem)
        for doc_id in set(ids) - set(decoded):
            self.late.get(docs[doc_id], {}).pop(doc_id, None)
        build_ids = [d for d in ids if docs[d] in self.builds]
        if not build_ids:
            return
        # every version each document had since its table's builds began: the scan may have
        # written the key of any of them
        versions = (
            await conn.execute(
                text(
                    "SELECT l.doc_id, l.value FROM log AS l WHERE l.doc_id IN :ids"
                    " AND l.value IS NOT NULL AND l.ts >= coalesce((SELECT max(p.ts) FROM log AS p"
                    " WHERE p.doc_id = l.doc_id AND p.ts <= :started), 0)"
                ).bindparams(_expanding("ids")),
                {"ids": build_ids, "started": min(self.started[docs[d]] for d in build_ids)},
            )
        ).all()
        stale: set[tuple[str, bytes]] = set()
        for row, old in zip(versions, decode_docs([r.value for r in versions]), strict=True):
            for build in self.builds[docs[row.doc_id]]:
                stale.add((build.storage, build.definition.key_of(old)))
        fresh = [
            (build.storage, build.definition.key_of(decoded[d]), d)
            for d in build_ids
            if d in decoded
            for build in self.builds[docs[d]]
        ]
        if stale:
            await conn.execute(
                text("DELETE FROM index_entries WHERE index_name = :n AND key = :k"),
                [{"n": n, "k": k} for n, k in sorted(stale)],
            )
        if fresh:
            if kind is DatabaseKind.POSTGRESQL:
                await conn.execute(_PG_INSERT_ENTRIES, _columns(fresh))
            else:
                await conn.execute(
                    text(
                        "INSERT OR IGNORE INTO index_entries (index_name, key, doc_id)"
                        " VALUES (:n, :k, :d)"
                    ),
                    [{"n": n, "k": k, "d": d} for n, k, d in fresh],
                )

    def failures(self) -> dict[str, list[Failure]]:
        """Documents written since the check that the new schema refuses, by table."""
        return {t: list(f.values()) for t, f in sorted(self.late.items()) if f}


def _expanding(name: str) -> BindParameter[Any]:
    return bindparam(name, expanding=True)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
