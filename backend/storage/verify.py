"""``verify-log``: rebuild the projections from the log in memory and compare with the live ones.

The log is the truth (ARCHITECTURE.md, invariant 1). This replays every log row in commit
order into a scratch map, derives the index entries the schema implies, and compares both
with the ``documents`` and ``index_entries`` tables, reporting the first difference.

The schema is the *deployed* one (``storage/deployment.py``), not the code's: the projections
were built for it. Its ready indexes must hold exactly the keys of the replayed documents; an
index being built (a deploy is filling it, and catches it up before it serves) or dropped (a
deploy is deleting its entries) is left alone; entries under any other name should not exist,
and neither should documents of a table that is not deployed. A database on which nothing was
ever deployed is checked against the code's schema.

Memory grows with the number of live documents (not with the log's length): the replay keeps
only the newest version of each document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select

from backend.schema_definition import IndexDef, Schema
from backend.storage.deployment import IndexState, load_deployment
from backend.storage.store import Store, decode_doc
from backend.storage.tables import commits, documents, index_entries, log

_BATCH = 5000


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


async def verify_log(store: Store, schema: Schema | None = None) -> Report:
    """Compare the projections with a replay of the log; ``schema`` (the code's) is used only
    where nothing was ever deployed."""
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
    replayed: dict[str, tuple[str, str]] = {}
    log_rows = 0
    last: tuple[int, int] = (-1, -1)
    async with store.engine.connect() as conn:
        commit_count = len((await conn.execute(select(commits.c.ts))).all())
        logged_ts = set()
        while True:
            rows = (
                await conn.execute(
                    select(log)
                    .where((log.c.ts > last[0]) | ((log.c.ts == last[0]) & (log.c.seq > last[1])))
                    .order_by(log.c.ts, log.c.seq)
                    .limit(_BATCH)
                )
            ).all()
            if not rows:
                break
            for row in rows:
                logged_ts.add(row.ts)
                if row.value is None:
                    replayed.pop(row.doc_id, None)
                else:
                    replayed[row.doc_id] = (row.table_name, row.value)
            log_rows += len(rows)
            last = (rows[-1].ts, rows[-1].seq)
        commit_ts = {r.ts for r in (await conn.execute(select(commits.c.ts))).all()}
        orphan = sorted(logged_ts - commit_ts)
        if orphan:
            return Report(
                commit_count, log_rows, 0, 0, f"log rows at ts {orphan[0]} have no commit row"
            )

        live = {
            r.doc_id: (r.table_name, r.value) for r in (await conn.execute(select(documents))).all()
        }
        live_entries = {
            (r.index_name, bytes(r.key)): r.doc_id
            for r in (await conn.execute(select(index_entries))).all()
            if r.index_name not in unchecked
        }

    difference = _compare_documents(replayed, live)
    expected_entries: dict[tuple[str, bytes], str] = {}
    if difference is None:
        for doc_id, (table_name, value) in replayed.items():
            if table_name not in indexes:
                difference = f"document {doc_id} belongs to table {table_name!r}, not in the schema"
                break
            document = decode_doc(value)
            for index in indexes[table_name]:
                expected_entries[(index.qualified_name, index.key_of(document))] = doc_id
    if difference is None:
        difference = _first(
            f"index entry {name} {key.hex()} "
            + (
                f"for {expected_entries[(name, key)]} is missing"
                if (name, key) in expected_entries
                else f"for {live_entries[(name, key)]} should not exist"
            )
            for (name, key) in sorted(set(expected_entries) ^ set(live_entries))
        ) or _first(
            f"index entry {name} {key.hex()} points at {live_entries[(name, key)]}, "
            f"expected {doc_id}"
            for (name, key), doc_id in sorted(expected_entries.items())
            if live_entries.get((name, key)) not in (None, doc_id)
        )
    return Report(
        commit_count, log_rows, len(live), len(live_entries), difference, building, dropping
    )


def _first(items: Iterator[str]) -> str | None:
    return next(items, None)


def _compare_documents(
    replayed: dict[str, tuple[str, str]], live: dict[str, tuple[str, str]]
) -> str | None:
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
