"""Running data migrations (``@migration``): in batches, resumable, recorded as done.

A migration walks its table in ``by_creation_time`` order. Each batch is one serializable
transaction, like a mutation: it reads the migration's record in ``_migrations``, the next
``batch_size`` documents after the recorded position, applies the body to each, writes what
changed, and moves the position, all or nothing. So a crash (``kill -9``) loses at most the
batch in flight, and running the migration again goes on from the last batch that committed;
once a batch finds the end of the table the migration is recorded as done, and running it
again does nothing. Its writes are ordinary commits: in the log, validated against the
deployed schema, seen by live queries.

Documents inserted while a migration runs sort after its position (they are newer) and are
visited too, so a body should return an already-migrated document unchanged.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from backend.errors import ConvexError, ErrorCode
from backend.schema_definition import BY_CREATION_TIME, SYSTEM_FIELDS, TableDef, table
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import Auth, MutationCtx
from backend.udf.migration import DELETE, Migration
from backend.values.index_key import KeyRange

if TYPE_CHECKING:
    from backend.engine import Engine

TABLE = "_migrations"
BATCH_SIZE = 500
Progress = Callable[["MigrationProgress"], None]


class MigrationRecord(BaseModel):
    name: str
    table: str
    cursor: str | None = None  # hex of the last ``by_creation_time`` key done
    processed: int = 0
    changed: int = 0
    deleted: int = 0
    done: bool = False
    startedAt: float
    finishedAt: float | None = None


TABLES: dict[str, TableDef] = {TABLE: table(MigrationRecord).index("by_name", "name")}


@dataclass(frozen=True)
class MigrationProgress:
    name: str
    processed: int  # documents the body has seen, over all runs
    changed: int
    deleted: int
    done: bool
    batch: int = 0  # documents in the batch just run (0 when nothing ran)

    def describe(self) -> str:
        state = "done" if self.done else "in progress"
        return (
            f"migration {self.name}: {self.processed:,} documents, {self.changed:,} changed, "
            f"{self.deleted:,} deleted ({state})"
        )


class Migrator:
    """Runs an engine's app migrations."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def migrations(self) -> dict[str, Migration]:
        return self.engine.app.migrations

    def find(self, name: str) -> Migration:
        """A migration by path (``module:name``) or, when only one has it, by bare name."""
        found = self.migrations.get(name)
        if found is None:
            matches = [m for path, m in self.migrations.items() if path.split(":")[-1] == name]
            if len(matches) == 1:
                found = matches[0]
        if found is None:
            known = ", ".join(sorted(self.migrations)) or "none"
            raise ConvexError(
                ErrorCode.NOT_FOUND, f"no migration {name!r} (the app has: {known})", name=name
            )
        return found

    async def status(self) -> list[MigrationProgress]:
        out = []
        for path in sorted(self.migrations):
            record = await self._record(path)
            out.append(_progress(path, record, 0))
        return out

    async def step(self, name: str, *, batch_size: int = BATCH_SIZE) -> MigrationProgress:
        """Run one batch of ``name`` in one transaction; a done migration runs nothing."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        found = self.find(name)
        assert found.path is not None
        if found.table not in self.engine.schema.tables:
            raise ConvexError(
                ErrorCode.INVALID_ARGUMENT,
                f"migration {found.path} is over {found.table!r}, which the app no longer declares",
            )

        async def batch(db: SystemDatabase) -> MigrationProgress:
            return await self._batch(db, found, batch_size)

        progress, _ts = await self.engine.system_write(batch, label=f"_migrations:{found.path}")
        return progress

    async def run(
        self,
        name: str,
        *,
        batch_size: int = BATCH_SIZE,
        batch_pause: float = 0.0,
        progress: Progress | None = None,
    ) -> MigrationProgress:
        """Run ``name`` to the end (from where it stopped), a batch per transaction."""
        while True:
            current = await self.step(name, batch_size=batch_size)
            if progress is not None:
                progress(current)
            if current.done:
                return current
            if batch_pause:
                await asyncio.sleep(batch_pause)

    async def pending(self) -> list[str]:
        return [p.name for p in await self.status() if not p.done]

    async def _record(self, path: str) -> dict[str, Any] | None:
        async def read(db: SystemDatabase) -> dict[str, Any] | None:
            return await db.query(TABLE).with_index("by_name", name=path).unique()

        return await self.engine.system_read(read)

    async def _batch(self, db: SystemDatabase, found: Migration, limit: int) -> MigrationProgress:
        assert found.path is not None
        txn = db.txn
        record = await db.query(TABLE).with_index("by_name", name=found.path).unique()
        if record is not None and record["done"]:
            return _progress(found.path, record, 0)
        after = bytes.fromhex(record["cursor"]) if record and record["cursor"] else None
        index = txn.schema.index(found.table, BY_CREATION_TIME)
        start = after + b"\x00" if after is not None else b""
        rows = await txn.reader.scan(
            index.qualified_name, KeyRange(start, None), descending=False, limit=limit
        )
        txn.count_reads(len(rows))
        txn.read_set.add_range(
            index.qualified_name, KeyRange(start, rows[-1][0] + b"\x00" if rows else None)
        )
        ctx = MutationCtx(self.engine, txn, Auth(None))
        changed = deleted = 0
        for _key, document in rows:
            result = await found.apply(ctx, _copy(document))
            if result is DELETE:
                await txn.delete(document["_id"], system=False, known=document)
                deleted += 1
                continue
            fields = {k: v for k, v in result.items() if k not in SYSTEM_FIELDS}
            if fields != {k: v for k, v in document.items() if k not in SYSTEM_FIELDS}:
                await txn.replace(document["_id"], fields, system=False, known=document)
                changed += 1
        finished = len(rows) < limit
        values: dict[str, Any] = {
            "name": found.path,
            "table": found.table,
            "cursor": rows[-1][0].hex() if rows else (record or {}).get("cursor"),
            "processed": (record or {}).get("processed", 0) + len(rows),
            "changed": (record or {}).get("changed", 0) + changed,
            "deleted": (record or {}).get("deleted", 0) + deleted,
            "done": finished,
            "startedAt": (record or {}).get("startedAt", db.now_ms),
            "finishedAt": db.now_ms if finished else None,
        }
        if record is None:
            await db.insert(TABLE, values)
        else:
            await db.replace(record["_id"], values)
        return _progress(found.path, values, len(rows))


def _progress(path: str, record: dict[str, Any] | None, batch: int) -> MigrationProgress:
    record = record or {}
    return MigrationProgress(
        path,
        record.get("processed", 0),
        record.get("changed", 0),
        record.get("deleted", 0),
        bool(record.get("done", False)),
        batch,
    )


def _copy(document: dict[str, Any]) -> dict[str, Any]:
    """A copy the body may change freely (so what it returns can be compared with what was)."""
    return {k: copy.deepcopy(v) if isinstance(v, dict | list) else v for k, v in document.items()}
