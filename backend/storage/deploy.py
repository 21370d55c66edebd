"""Deploying a schema: validate the stored documents, build new indexes, drop old ones.

``deploy(store, schema)`` takes the database from the deployed schema (``deployment.py``) to
``schema``, or refuses and changes nothing. In order, each step safe to interrupt (``kill -9``)
and to run again, beside server processes that keep serving the old app:

1. **Check.** Every stored document of a table whose fields changed is validated against the
   new model; a table no longer declared must hold no documents. Any failure refuses the
   deploy with a report (``DeployReport``) before anything is written.
2. **Plan.** Each new index, or index whose fields changed, is recorded as *building* under a
   storage name of its own (an index redefined keeps its old entries for the old app until the
   new ones are ready), with the newest commit timestamp ``S`` at which the build starts.
3. **Scan.** The table's documents are read in batches (through its ready ``by_creation_time``
   index, or the ``documents`` table in its physical order when the table holds much of it or
   on a first deploy; ``backfill.py``) and their keys written, with the scan's position, in
   one short transaction per batch: rerun, it goes on from there.
4. **Catch up, then go live.** The old app keeps writing during the scan and knows nothing of
   the new index, so an entry the scan wrote may be stale, and documents it already passed may
   change. The commits after ``S`` say which documents were written (their write sets, in the
   log); for each, the keys of every version it had since ``S`` (from ``log``) are deleted and
   the key of its current version written. This is repeated without locks while many commits
   are left, then once more holding the commit lock (PostgreSQL's advisory lock, SQLite's
   write lock), so that no commit can land between the last catch-up and the switch: in that
   same transaction the documents written since the check are validated again, the new
   indexes become *ready*, replaced and removed ones *dropping*, the tables' fields are
   recorded, and the fence moves (``deployment.py``). From the next commit on, every writer
   either maintains the new indexes (the new app) or is refused for those tables (the old one).
   Catching up from the log was chosen over making old processes maintain a building index:
   they would need to learn of it mid-flight, and a PostgreSQL writer's snapshot predates the
   commits it races with, so its deletes of stale keys could miss the scan's inserts.
5. **Drop.** The entries of dropping indexes are deleted in batches, then their records.

A first deploy (nothing recorded yet, as on a database from before deploys) validates every
document, and rebuilds every index from the documents rather than trusting entries an older
engine left: those of an index added late miss the rows written before it, those of an index
dropped were never deleted. Stop servers of such an engine first: they know no fence.

Backfill batches write ``index_entries`` directly and add nothing to the log: documents do not
change. ``verify-log`` therefore compares the ready indexes with the replayed documents and
leaves building and dropping ones alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, text, update
from sqlalchemy.engine import make_url

from backend.schema_definition import Schema
from backend.storage.backfill import (
    BatchOptions,
    CatchUp,
    Failure,
    Progress,
    Reporter,
    all_documents,
    count_entries,
    maintenance,
    scan_index,
    scan_into,
)
from backend.storage.database import DatabaseKind
from backend.storage.deployment import (
    DeployedIndex,
    Deployment,
    IndexState,
    creation_index,
    load_deployment,
    lock_commits,
    read_deployment,
)
from backend.storage.store import Store
from backend.storage.tables import schema_fence, schema_indexes, schema_tables

log = logging.getLogger("backend.deploy")

BATCH_SIZE = 2000
_FIRST_FAILURES = 10
_LOCKED_BELOW = 200  # catch up under the commit lock once a pass finds fewer commits than this


# ---- the report -------------------------------------------------------------------------------


@dataclass
class TableRefusal:
    """Why one table stops the deploy."""

    table: str
    total: int  # documents that fail (or that an undeclared table still holds)
    failures: list[Failure] = field(default_factory=list)  # the first ones, up to 10
    undeclared: bool = False

    def describe(self) -> list[str]:
        if self.undeclared:
            return [
                f"table {self.table!r} is no longer declared but still holds {self.total} "
                "documents. Nothing is dropped silently: declare the table again, or delete its "
                "documents first (a migration whose body returns DELETE for each, run with "
                "`python -m backend migrations run`), then deploy."
            ]
        lines = [
            f"table {self.table!r}: {self.total} document{'s' * (self.total != 1)} do not "
            "match the new schema; the first:"
        ]
        lines.extend(f"  {f.doc_id}: {f.field}: {f.reason}" for f in self.failures)
        lines.append(
            "  To change stored documents: deploy the field as optional, fill it with a "
            "migration (`python -m backend migrations run`), then make it required."
        )
        return lines


@dataclass
class DeployReport:
    """What a deploy did, or why it refused (and then it changed nothing)."""

    refusals: list[TableRefusal] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what differed from the deployed schema
    built: dict[str, int] = field(default_factory=dict)  # index -> documents scanned
    dropped: list[str] = field(default_factory=list)  # index storages emptied
    validated: dict[str, int] = field(default_factory=dict)  # table -> documents checked

    @property
    def ok(self) -> bool:
        return not self.refusals

    def refusal(self, table: str) -> TableRefusal | None:
        return next((r for r in self.refusals if r.table == table), None)

    def format(self) -> str:
        if self.refusals:
            lines = ["Deploy refused; nothing was changed."]
            for refusal in self.refusals:
                lines.extend(refusal.describe())
            return "\n".join(lines)
        if not self.changes and not self.dropped:
            return "The schema is deployed already; nothing to do."
        lines = ["Schema deployed:"]
        new_tables = [c for c in self.changes if c.startswith("table ") and c.endswith(" is new")]
        if len(new_tables) > 3:  # a first deploy: every table (and index) is new
            names = ", ".join(c.split("'")[1] for c in new_tables)
            lines.append(f"  {len(new_tables)} new tables: {names}")
            changes = [c for c in self.changes if c not in new_tables and not c.endswith(" is new")]
        else:
            changes = self.changes
        lines.extend(f"  {change}" for change in changes)
        lines.extend(f"  built {name} ({n} documents)" for name, n in self.built.items() if n)
        empty = sum(1 for n in self.built.values() if not n)
        if empty:
            lines.append(f"  built {empty} index{'es' * (empty != 1)} of empty tables")
        lines.extend(f"  dropped the entries of {name}" for name in self.dropped)
        return "\n".join(lines)


class DeployRefused(Exception):
    def __init__(self, report: DeployReport) -> None:
        super().__init__(report.format())
        self.report = report


# ---- the procedure ----------------------------------------------------------------------------


async def deploy(
    store: Store,
    schema: Schema,
    *,
    batch_size: int = BATCH_SIZE,
    batch_pause: float = 0.0,
    revalidate: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DeployReport:
    """Deploy ``schema`` (app and engine tables together) on ``store``; see the module doc.

    ``batch_pause`` seconds between batches spare a busy database; ``revalidate`` checks every
    table, changed or not. Returns the report; ``report.ok`` is False when refused."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    options = BatchOptions(batch_size, batch_pause, progress, clock)
    async with _deploy_lock(store):
        deployment = await load_deployment(store)
        report = DeployReport(changes=deployment.differences(schema))
        first = not deployment.tables  # nothing has gone live here yet
        since = await store.latest_ts()  # before anything is read: later commits are caught up
        # a first deploy may meet documents written before deploys existed
        has_documents = not first or await _any_document(store)
        check = [
            t
            for t in schema.tables
            if revalidate or first or deployment.tables.get(t) != schema.describe(t)
        ]
        if has_documents:
            await _check(store, schema, deployment, check, first, report, options)
            if not report.ok:
                return report
        if first and has_documents:
            await _record_orphans(store, deployment)
            await _drop(store, options, None)
            deployment = await load_deployment(store)
        builds = await _plan(store, schema, deployment, since, first)
        await _drop(store, options, report)  # builds an interrupted deploy wanted, and no more
        if has_documents:
            await _scan(store, deployment, builds, first, options)
        if report.changes or builds:
            starts = [b.started_ts for b in builds if b.started_ts is not None]
            late = await _go_live(store, schema, builds, min([since, *starts]), check)
            if late:
                report.refusals.extend(late)
                await _abandon(store, builds)
                await _drop(store, options, None)
                return report
            for build in builds:
                report.built[build.storage] = await count_entries(store, build.storage)
        await _drop(store, options, report)
    return report


async def _any_document(store: Store) -> bool:
    async with store.engine.connect() as conn:
        return (await conn.execute(text("SELECT 1 FROM documents LIMIT 1"))).first() is not None


# ---- 1. check ---------------------------------------------------------------------------------


async def _check(
    store: Store,
    schema: Schema,
    deployment: Deployment,
    tables: Sequence[str],
    first: bool,
    report: DeployReport,
    options: BatchOptions,
) -> None:
    """Validate the documents of ``tables``; refuse tables no longer declared that hold any."""
    refusals: dict[str, TableRefusal] = {}

    def note(table: str, doc_id: str, document: dict[str, Any]) -> None:
        problem = schema.violation(table, document)
        if problem is not None:
            refusal = refusals.setdefault(table, TableRefusal(table, 0))
            refusal.total += 1
            if len(refusal.failures) < _FIRST_FAILURES:
                refusal.failures.append(Failure(doc_id, *problem))

    if first:  # nothing recorded: one pass over every document finds every table
        seen: dict[str, int] = {}
        async for table, doc_id, document in all_documents(store, options.batch_size):
            seen[table] = seen.get(table, 0) + 1
            if table in schema.tables:
                note(table, doc_id, document)
        undeclared = {t: n for t, n in seen.items() if t not in schema.tables}
        report.validated.update({t: n for t, n in seen.items() if t in schema.tables})
    else:
        undeclared = {}
        for table in sorted(set(deployment.tables) - set(schema.tables)):
            source = creation_index(deployment, table)
            count = await count_entries(store, source.storage) if source else 0
            if count:
                undeclared[table] = count
        for table in tables:
            source = creation_index(deployment, table)
            if source is None:  # a new table: nothing could write it before it is deployed
                continue
            total = await count_entries(store, source.storage)
            checked = 0
            reporter = Reporter(f"checking {table}", total, options)
            async for batch in scan_index(store, source.storage, options.batch_size):
                for doc_id, document in batch:
                    note(table, doc_id, document)
                checked += len(batch)
                reporter.update(checked)
                if options.batch_pause:
                    await asyncio.sleep(options.batch_pause)
            reporter.done(checked)
            report.validated[table] = checked
    for table, count in sorted(undeclared.items()):
        refusals[table] = TableRefusal(table, count, undeclared=True)
    report.refusals.extend(refusals[t] for t in sorted(refusals))


# ---- 2. plan ----------------------------------------------------------------------------------


async def _plan(
    store: Store, schema: Schema, deployment: Deployment, since: int, first: bool
) -> list[DeployedIndex]:
    """Record the builds this deploy needs (taking over an interrupted deploy's), and mark the
    builds nothing wants any more as dropping. Returns the builds."""
    taken = set(deployment.indexes)
    building = deployment.in_state(IndexState.BUILDING)
    builds: list[DeployedIndex] = []
    new_rows: list[dict[str, Any]] = []
    for index in schema.indexes.values():
        ready = deployment.ready(index.table, index.name)
        if ready is not None and ready.defines(index):
            continue
        resumed = next((i for i in building if i.defines(index) and i not in builds), None)
        if resumed is not None:
            builds.append(resumed)
            continue
        storage = _free_name(index.declared_name, taken)
        taken.add(storage)
        # a table new to a deployed schema has no documents yet: nothing to scan
        nothing_to_scan = not first and index.table not in deployment.tables
        build = DeployedIndex(
            storage,
            index.table,
            index.name,
            index.fields,
            IndexState.BUILDING,
            started_ts=since,
            scanned=nothing_to_scan,
        )
        builds.append(build)
        new_rows.append(_row(build))
    unwanted = [i.storage for i in building if i not in builds]
    async with maintenance(store) as conn:
        if new_rows:
            await conn.execute(insert(schema_indexes), new_rows)
        if unwanted:
            await conn.execute(
                update(schema_indexes)
                .where(schema_indexes.c.storage.in_(unwanted))
                .values(state=IndexState.DROPPING.value)
            )
    return builds


async def _record_orphans(store: Store, deployment: Deployment) -> None:
    """Entries under names nothing records (a database older than deploys) are not trusted:
    recorded as dropping, and rebuilt from the documents."""
    orphans = await _orphan_storages(store, deployment)
    if orphans:
        async with maintenance(store) as conn:
            await conn.execute(
                insert(schema_indexes),
                [
                    _row(DeployedIndex(n, n.partition(".")[0], n, (), IndexState.DROPPING))
                    for n in orphans
                ],
            )


def _free_name(declared: str, taken: set[str]) -> str:
    """``table.index`` for an index's first definition; ``table.index#2``, ... after."""
    if declared not in taken:
        return declared
    n = 2
    while f"{declared}#{n}" in taken:
        n += 1
    return f"{declared}#{n}"


def _row(index: DeployedIndex) -> dict[str, Any]:
    return {
        "storage": index.storage,
        "table_name": index.table,
        "name": index.name,
        "fields": json.dumps(list(index.fields)),
        "state": index.state.value,
        "started_ts": index.started_ts,
        "cursor": index.cursor,
        "scanned": index.scanned,
    }


_LOOSE_SCAN = text(
    "WITH RECURSIVE names(n) AS ("
    " SELECT min(index_name) FROM index_entries"
    " UNION ALL"
    " SELECT (SELECT min(index_name) FROM index_entries WHERE index_name > names.n)"
    " FROM names WHERE names.n IS NOT NULL"
    ") SELECT n FROM names WHERE n IS NOT NULL"
)


async def _orphan_storages(store: Store, deployment: Deployment) -> list[str]:
    """Index names that have entries but no record (one index probe per name)."""
    async with store.engine.connect() as conn:
        names = [str(r.n) for r in (await conn.execute(_LOOSE_SCAN)).all()]
    return [n for n in names if n not in deployment.indexes]


# ---- 3. scan ----------------------------------------------------------------------------------


async def _scan(
    store: Store,
    deployment: Deployment,
    builds: Sequence[DeployedIndex],
    first: bool,
    options: BatchOptions,
) -> None:
    pending = [b for b in builds if not b.scanned]
    if not pending:
        return
    if first:  # no table has a ready index yet: one pass over all documents serves them all
        await scan_into(store, None, pending, options)
        return
    by_table: dict[str, list[DeployedIndex]] = {}
    for build in pending:
        by_table.setdefault(build.table, []).append(build)
    for table, indexes in sorted(by_table.items()):
        source = creation_index(deployment, table)
        if source is None:  # pragma: no cover - every deployed table has one
            raise RuntimeError(f"table {table!r} is deployed without its by_creation_time index")
        await scan_into(store, source.storage, indexes, options)


# ---- 4. catch up and go live ------------------------------------------------------------------


async def _go_live(
    store: Store,
    schema: Schema,
    builds: Sequence[DeployedIndex],
    after: int,
    check: Sequence[str],
) -> list[TableRefusal]:
    """Catch up, then switch to ``schema`` under the commit lock. Returns refusals (documents
    written meanwhile that the new schema refuses, or a removed table written meanwhile); the
    switch is made only when there are none."""
    by_table: dict[str, list[DeployedIndex]] = {}
    for build in builds:
        by_table.setdefault(build.table, []).append(build)
    catch_up = CatchUp(schema, by_table, set(check), after)
    while True:  # without the lock while much is left
        async with maintenance(store) as conn:
            if await catch_up.run(conn, store.kind) < _LOCKED_BELOW:
                break
    refusals: list[TableRefusal] = []
    async with maintenance(store) as conn:
        await lock_commits(conn, store)
        while await catch_up.run(conn, store.kind):
            pass
        refusals = [
            TableRefusal(table, len(failures), failures[:_FIRST_FAILURES])
            for table, failures in catch_up.failures().items()
        ]
        current = await read_deployment(conn, None)
        for table in sorted(set(current.tables) - set(schema.tables)):
            source = creation_index(current, table)
            if source is not None:
                held = await conn.execute(
                    text("SELECT count(*) FROM index_entries WHERE index_name = :n"),
                    {"n": source.storage},
                )
                count = int(held.scalar_one())
                if count:  # written by the old app since the check
                    refusals.append(TableRefusal(table, count, undeclared=True))
        if refusals:
            return refusals
        live = {b.storage for b in builds}
        keep = set(current.storage_for(schema).values())
        retire = [i.storage for i in current.in_state(IndexState.READY) if i.storage not in keep]
        if live:
            await conn.execute(
                update(schema_indexes)
                .where(schema_indexes.c.storage.in_(sorted(live)))
                .values(state=IndexState.READY.value, started_ts=None, cursor=None, scanned=False)
            )
        if retire:
            await conn.execute(
                update(schema_indexes)
                .where(schema_indexes.c.storage.in_(retire))
                .values(state=IndexState.DROPPING.value)
            )
        await conn.execute(delete(schema_tables))
        await conn.execute(
            insert(schema_tables),
            [{"name": t, "fields": schema.describe(t)} for t in sorted(schema.tables)],
        )
        # last, while the commit lock is held: the next commit anywhere sees the new fence
        if store.kind is DatabaseKind.POSTGRESQL:
            await conn.execute(text("SELECT nextval('schema_fence_seq')"))
        else:
            await conn.execute(update(schema_fence).values(value=schema_fence.c.value + 1))
    return []


async def _abandon(store: Store, builds: Sequence[DeployedIndex]) -> None:
    """A refused deploy leaves nothing behind: its builds are dropped."""
    if builds:
        async with maintenance(store) as conn:
            await conn.execute(
                update(schema_indexes)
                .where(schema_indexes.c.storage.in_([b.storage for b in builds]))
                .values(state=IndexState.DROPPING.value)
            )


# ---- 5. drop ----------------------------------------------------------------------------------


_NTH_KEY = text(
    "SELECT key FROM index_entries WHERE index_name = :n ORDER BY key LIMIT 1 OFFSET :skip"
)
_DROP_UP_TO = text("DELETE FROM index_entries WHERE index_name = :n AND key <= :last")
_DROP_ALL = text("DELETE FROM index_entries WHERE index_name = :n")


async def _drop(store: Store, options: BatchOptions, report: DeployReport | None) -> None:
    """Delete the entries of every dropping index, a batch per transaction, then its record.
    No one maintains a dropping index (see ``deployment.py``), so the batches race nobody."""
    deployment = await load_deployment(store)
    for index in deployment.in_state(IndexState.DROPPING):
        while True:
            async with maintenance(store) as conn:
                # the batch's last key, then one range delete on the primary key (a delete
                # "key IN (a subquery)" made PostgreSQL scan the whole index per batch)
                last = (
                    await conn.execute(
                        _NTH_KEY, {"n": index.storage, "skip": options.batch_size - 1}
                    )
                ).scalar()
                if last is None:
                    await conn.execute(_DROP_ALL, {"n": index.storage})
                    await conn.execute(
                        delete(schema_indexes).where(schema_indexes.c.storage == index.storage)
                    )
                    break
                await conn.execute(_DROP_UP_TO, {"n": index.storage, "last": last})
            if options.batch_pause:
                await asyncio.sleep(options.batch_pause)
        if report is not None:
            report.dropped.append(index.storage)


# ---- one deploy at a time ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _deploy_lock(store: Store) -> AsyncIterator[None]:
    """Two deploys at once wait for each other: a session lock on PostgreSQL, a file lock
    beside the database on SQLite."""
    if store.kind is DatabaseKind.POSTGRESQL:
        async with store.engine.connect() as conn:
            key = store.commit_lock_key ^ 0x5DE9_10E5
            await conn.execute(text("SELECT pg_advisory_lock(CAST(:k AS bigint))"), {"k": key})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(CAST(:k AS bigint))"), {"k": key}
                )
                await conn.commit()
        return
    database = make_url(store.url).database
    if not database or database == ":memory:":
        yield
        return
    path = Path(f"{database}.deploy-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
