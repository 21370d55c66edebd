"""``verify-log``: replay the log and compare with the live projections, a batch at a time.

The log is the truth (ARCHITECTURE.md, invariant 1). This replays it, derives the index entries
the schema implies, and compares both with the ``documents`` and ``index_entries`` tables,
reporting the first difference.

The schema is the *deployed* one (``storage/deployment.py``), not the code's: the projections
were built for it. Its ready indexes must hold exactly the keys of the replayed documents; an
index being built (a deploy is filling it, and catches it up before it serves) or dropped (a
deploy is deleting its entries) is left alone; entries under any other name should not exist,
and neither should documents of a table that is not deployed. A database on which nothing was
ever deployed is checked against the code's schema.

Memory stays bounded whatever the size of the database: everything streams in key order, in
batches, from one snapshot.

- The replay goes by document id, not by commit: a replay keeps only a document's newest
  version, so the batch of ids ``(after, last]`` is replayed by asking the database for each
  id's newest log row, read through ``log_by_doc``. ``last`` is the nearer of the next
  ``batch`` ids of ``log`` and of ``documents`` (``storage/scan.py``), so neither side of a
  batch holds more than ``batch`` documents, and a batch is compared before the next is read.
- The index entries the batch's documents imply are looked up by key: a missing one, or one
  that names another document, is remembered if it comes before the one remembered so far.
- Entries nobody implies are found by counting: when every implied entry was found and the
  ready indexes hold as many entries as were implied, there is none. Otherwise the entries are
  walked in key order (only as far as the first difference already known): every key ends
  with the id of the document it is for, which says which document to ask.

The differences are reported in the order a full comparison would find them: commits missing
for logged timestamps, then documents in id order, then documents of tables not deployed, then
index entries missing or superfluous in (index, key) order, then entries naming the wrong
document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, LargeBinary, Select, any_, bindparam, exists, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.schema_definition import IndexDef, Schema
from backend.storage.deployment import IndexState, load_deployment
from backend.storage.scan import batch_end
from backend.storage.store import Store, decode_doc
from backend.storage.tables import commits, documents, index_entries, log
from backend.values.ids import ID_LENGTH
from backend.values.index_key import encode_value

BATCH = 2000

Row = tuple[str, str]  # a document's table and stored value


@dataclass(frozen=True)
class Report:
    commits: int
    log_rows: int
    documents: int
    index_entries: int
    difference: str | None
    building: tuple[str, ...] = ()  # indexes a deploy is filling (their entries not compared)
    dropping: tuple[str, ...] = ()  # indexes a deploy is deleting (likewise)

    @property
    def ok(self) -> bool:
        return self.difference is None


# ---- statements, built once -------------------------------------------------------------------

_LOG_BATCH_END = batch_end(log.c.doc_id)
_DOCUMENTS_BATCH_END = batch_end(documents.c.doc_id)


def _in_range(column: ColumnElement[str]) -> ColumnElement[bool]:
    return (column > bindparam("after")) & (column <= bindparam("last"))


_newest = (
    select(
        log.c.doc_id,
        log.c.table_name,
        log.c.value,
        func.row_number()
        .over(partition_by=log.c.doc_id, order_by=(log.c.ts.desc(), log.c.seq.desc()))
        .label("newest"),
    )
    .where(_in_range(log.c.doc_id))
    .subquery()
)
_REPLAY = select(_newest.c.doc_id, _newest.c.table_name, _newest.c.value).where(
    _newest.c.newest == 1
)
_LIVE = select(documents.c.doc_id, documents.c.table_name, documents.c.value).where(
    _in_range(documents.c.doc_id)
)
_ENTRIES_AT = select(index_entries.c.key, index_entries.c.doc_id).where(
    index_entries.c.index_name == bindparam("name"),
    index_entries.c.key.in_(bindparam("keys", expanding=True)),
)
# PostgreSQL: the keys as one array parameter (an expanding IN renders a parameter per key,
# a fifth of the verify's time in Python)
_ENTRIES_AT_PG = select(index_entries.c.key, index_entries.c.doc_id).where(
    index_entries.c.index_name == bindparam("name"),
    index_entries.c.key == any_(bindparam("keys", type_=ARRAY(LargeBinary))),
)
_DOCUMENTS_AT = select(documents.c.doc_id, documents.c.table_name, documents.c.value).where(
    documents.c.doc_id.in_(bindparam("ids", expanding=True))
)
_NEXT_INDEX_NAME = select(func.min(index_entries.c.index_name)).where(
    index_entries.c.index_name > bindparam("after")
)
_ENTRIES_AFTER = (
    select(index_entries.c.key, index_entries.c.doc_id)
    .where(
        index_entries.c.index_name == bindparam("name"),
        index_entries.c.key > bindparam("after_key"),
    )
    .order_by(index_entries.c.key)
    .limit(bindparam("batch"))
)
_ORPHAN_TS = select(func.min(log.c.ts)).where(~exists().where(commits.c.ts == log.c.ts))

# What a batch runs (a test reads their plans on tables the planner knows nothing of).
BATCH_STATEMENTS: dict[str, Select[Any]] = {
    "log batch end": _LOG_BATCH_END,
    "documents batch end": _DOCUMENTS_BATCH_END,
    "replay": _REPLAY,
    "live": _LIVE,
    "entries after": _ENTRIES_AFTER,
}


@dataclass
class _Findings:
    """The first difference of each kind found so far (in the order a full comparison sorts
    them), and what the entries check needs once every document has been seen."""

    foreign: str | None = None  # a document of a table that is not deployed
    missing: tuple[str, bytes, str] | None = None  # (index, key, the document it is for)
    wrong: tuple[str, bytes, str, str] | None = None  # (index, key, live doc, expected doc)
    implied: int = 0  # entries the documents imply, in the ready indexes
    by_name: dict[str, IndexDef] = field(default_factory=dict)

    def note_missing(self, name: str, key: bytes, doc_id: str) -> None:
        if self.missing is None or (name, key) < self.missing[:2]:
            self.missing = (name, key, doc_id)

    def note_wrong(self, name: str, key: bytes, live: str, expected: str) -> None:
        if self.wrong is None or (name, key) < self.wrong[:2]:
            self.wrong = (name, key, live, expected)


async def verify_log(store: Store, schema: Schema | None = None, *, batch: int = BATCH) -> Report:
    """Compare the projections with a replay of the log; ``schema`` (the code's) is used only
    where nothing was ever deployed. Reads ``batch`` documents at a time."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    deployment = await load_deployment(store)
    building = tuple(i.storage for i in deployment.in_state(IndexState.BUILDING))
    dropping = tuple(i.storage for i in deployment.in_state(IndexState.DROPPING))
    indexes: dict[str, list[IndexDef]]
    if deployment.tables:
        indexes = {t: [i.definition for i in deployment.ready_of(t)] for t in deployment.tables}
    elif schema is not None:
        indexes = {t: schema.indexes_of(t) for t in schema.tables}
    else:
        raise RuntimeError("nothing is deployed on this database: pass the code's schema")
    unchecked = set(building) | set(dropping)
    findings = _Findings(by_name={i.qualified_name: i for each in indexes.values() for i in each})

    async with store.snapshot(timestamped=False) as reader:
        conn = reader.conn

        async def count(table: Any, *where: ColumnElement[bool]) -> int:
            statement = select(func.count()).select_from(table).where(*where)
            return int((await conn.execute(statement)).scalar_one())

        commit_count = await count(commits)
        log_rows = await count(log)
        live_documents = await count(documents)
        live_entries = await count(index_entries, index_entries.c.index_name.not_in(unchecked))

        def report(difference: str | None) -> Report:
            return Report(
                commit_count,
                log_rows,
                live_documents,
                live_entries,
                difference,
                building,
                dropping,
            )

        orphan = (await conn.execute(_ORPHAN_TS)).scalar()
        if orphan is not None:
            return Report(
                commit_count, log_rows, 0, 0, f"log rows at ts {orphan} have no commit row"
            )

        after = ""  # ids are never empty: every id sorts after this
        while True:
            bounds = {"after": after, "batch": batch}
            ends = [
                end
                for end in (
                    (await conn.execute(_LOG_BATCH_END, bounds)).scalar(),
                    (await conn.execute(_DOCUMENTS_BATCH_END, bounds)).scalar(),
                )
                if end is not None
            ]
            if not ends:
                break
            last = min(ends)
            in_range = {"after": after, "last": last}
            replayed = {
                r.doc_id: (r.table_name, r.value)
                for r in await conn.execute(_REPLAY, in_range)
                if r.value is not None
            }
            live = {r.doc_id: (r.table_name, r.value) for r in await conn.execute(_LIVE, in_range)}
            difference = _compare_documents(replayed, live)
            if difference is not None:
                return report(difference)
            await _check_implied_entries(conn, replayed, indexes, findings)
            after = last

        if findings.foreign is not None:
            return report(findings.foreign)
        extra = None
        if findings.missing is not None or findings.implied != live_entries:
            extra = await _first_extra_entry(conn, findings, unchecked, batch)
        difference = _first_entry_difference(findings, extra)
        return report(difference)


async def _check_implied_entries(
    conn: AsyncConnection,
    replayed: dict[str, Row],
    indexes: dict[str, list[IndexDef]],
    findings: _Findings,
) -> None:
    """Look up the entries a batch of replayed documents implies."""
    lookup = _ENTRIES_AT if conn.dialect.name == "sqlite" else _ENTRIES_AT_PG
    implied: dict[str, dict[bytes, str]] = {}
    for doc_id in sorted(replayed):
        table_name, value = replayed[doc_id]
        if table_name not in indexes:
            if findings.foreign is None:
                findings.foreign = (
                    f"document {doc_id} belongs to table {table_name!r}, not in the schema"
                )
            continue
        document = decode_doc(value)
        for index in indexes[table_name]:
            implied.setdefault(index.qualified_name, {})[index.key_of(document)] = doc_id
    for name, wanted in implied.items():
        findings.implied += len(wanted)
        found = {
            bytes(r.key): r.doc_id
            for r in await conn.execute(lookup, {"name": name, "keys": list(wanted)})
        }
        for key, doc_id in wanted.items():
            have = found.get(key)
            if have is None:
                findings.note_missing(name, key, doc_id)
            elif have != doc_id:
                findings.note_wrong(name, key, have, doc_id)


async def _first_extra_entry(
    conn: AsyncConnection, findings: _Findings, unchecked: set[str], batch: int
) -> tuple[str, bytes, str] | None:
    """The first entry, in (index, key) order, that no document implies: walks the entries in
    that order, no further than the first missing one."""
    stop = findings.missing[:2] if findings.missing is not None else None
    name = ""
    while True:
        name = (await conn.execute(_NEXT_INDEX_NAME, {"after": name})).scalar()
        if name is None or (stop is not None and name > stop[0]):
            return None
        if name in unchecked:
            continue
        index = findings.by_name.get(name)
        key = b""
        while True:
            params = {"name": name, "after_key": key, "batch": batch}
            rows = [(bytes(r.key), r.doc_id) for r in await conn.execute(_ENTRIES_AFTER, params)]
            if not rows:
                break
            if index is None:  # entries of an index the schema does not have
                return (name, rows[0][0], rows[0][1])
            owners = {key: owner for key, _ in rows if (owner := _owner_of(key)) is not None}
            ids = sorted(set(owners.values()))
            found: dict[str, Row] = {
                r.doc_id: (r.table_name, r.value)
                for r in await conn.execute(_DOCUMENTS_AT, {"ids": ids})
            }
            for key, doc_id in rows:
                if stop is not None and (name, key) >= stop:
                    return None
                row = found.get(owners.get(key, ""))
                if row is None or not _implies(index, row, key):
                    return (name, key, doc_id)
            key = rows[-1][0]


def _owner_of(key: bytes) -> str | None:
    """The id an index key ends with (``IndexDef.key_of``: the key's last part is ``_id``)."""
    end = len(key) - 2
    candidate = key[end - ID_LENGTH : end]
    try:
        doc_id = candidate.decode("ascii")
    except UnicodeDecodeError:
        return None
    return doc_id if key.endswith(encode_value(doc_id)) else None


def _implies(index: IndexDef, row: Row, key: bytes) -> bool:
    table_name, value = row
    return table_name == index.table and index.key_of(decode_doc(value)) == key


def _first_entry_difference(
    findings: _Findings, extra: tuple[str, bytes, str] | None
) -> str | None:
    missing = findings.missing
    if missing is not None and (extra is None or missing[:2] < extra[:2]):
        name, key, doc_id = missing
        return f"index entry {name} {key.hex()} for {doc_id} is missing"
    if extra is not None:
        name, key, doc_id = extra
        return f"index entry {name} {key.hex()} for {doc_id} should not exist"
    if findings.wrong is not None:
        name, key, live, expected = findings.wrong
        return f"index entry {name} {key.hex()} points at {live}, expected {expected}"
    return None


def _compare_documents(replayed: dict[str, Row], live: dict[str, Row]) -> str | None:
    for doc_id in sorted(set(replayed) | set(live)):
        want, have = replayed.get(doc_id), live.get(doc_id)
        if want is None:
            return f"document {doc_id} exists but the log says it was never written or was deleted"
        if have is None:
            return f"document {doc_id} is in the log but missing from the documents table"
        if want[0] != have[0]:
            return f"document {doc_id} is in table {have[0]!r}, the log says {want[0]!r}"
        if want[1] != have[1] and decode_doc(want[1]) != decode_doc(have[1]):
            return f"document {doc_id} differs from its last logged version"
    return None
