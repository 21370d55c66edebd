"""The deployed schema: what the projections were built for, recorded in the database.

The engine stores the schema it last deployed (app and engine tables together) in two SQL
tables: ``schema_tables`` (each table's fields, as ``Schema.describe`` puts them) and
``schema_indexes`` (each index: its table, name and fields, where its entries live, and its
state). ``index_entries`` holds, for every *ready* index, exactly the keys of the documents;
an index being *built* holds some of them (a deploy is filling it); one being *dropped* holds
leftovers a deploy is deleting. ``storage/deploy.py`` moves an app from one schema to the next.

A server process serves one code schema. It may write a table only while that table is
deployed exactly as its code declares it (same fields, same ready indexes); otherwise it would
maintain the wrong indexes or store documents the deployed schema refuses. That is checked
without a round trip per commit by the **fence**: a number that every deploy moves, under the
commit lock, when it changes what writers must do (``schema_fence_seq`` on PostgreSQL, the row
of ``schema_fence`` on SQLite). A process remembers the fence of the deployment it read; every
commit compares it, under the commit lock, with the current one (``StoreWriter.commit``) and
is refused if it moved. The process then reads the deployment again and retries: the commit goes
through if the tables it writes are still deployed as its code says, and is refused with
``SCHEMA_OUTDATED`` (restart the server with the new app) otherwise.

Why the fence is a sequence on PostgreSQL: a mutation runs at ``SERIALIZABLE`` on a snapshot
taken when it began, so a row it reads in its commit statement shows the deployment as it was
then, not as it is once the commit lock is held. A sequence's value is not versioned: every
transaction sees its newest value at once. A deploy advances it as the last thing before it
commits, while it holds the commit lock; reading the deployment also takes that lock
(``load_deployment``), so a process can never pair a new fence with an old deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.schema_definition import BY_CREATION_TIME, IndexDef, Schema
from backend.storage.database import DatabaseKind
from backend.storage.store import Store
from backend.storage.tables import schema_fence, schema_indexes, schema_tables

DEPLOY_COMMAND = "python -m backend migrate"


class IndexState(StrEnum):
    BUILDING = "building"  # a deploy is filling it; nothing reads or maintains it yet
    READY = "ready"  # complete; every commit to its table maintains it
    DROPPING = "dropping"  # no longer deployed; a deploy is deleting its entries


@dataclass(frozen=True)
class DeployedIndex:
    storage: str
    table: str
    name: str
    fields: tuple[str, ...]
    state: IndexState
    started_ts: int | None = None  # building: the newest commit when the build began
    cursor: bytes | None = None  # building: where the scan of the table has got to
    scanned: bool = False  # building: the scan is done, only catching up remains

    @property
    def definition(self) -> IndexDef:
        return IndexDef(self.table, self.name, self.fields, self.storage)

    def defines(self, index: IndexDef) -> bool:
        return (self.table, self.name, self.fields) == (index.table, index.name, index.fields)


@dataclass(frozen=True)
class Deployment:
    """The deployed schema as recorded, with the fence it was read under."""

    tables: dict[str, str]  # table -> its fields (``Schema.describe``)
    indexes: dict[str, DeployedIndex]  # by storage
    fence: int | None
    _ready: dict[tuple[str, str], DeployedIndex] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for index in self.indexes.values():
            if index.state is IndexState.READY:
                self._ready[(index.table, index.name)] = index

    @property
    def is_empty(self) -> bool:
        """Nothing has ever been deployed on this database."""
        return not self.tables and not self.indexes

    def ready(self, table: str, name: str) -> DeployedIndex | None:
        return self._ready.get((table, name))

    def ready_of(self, table: str) -> list[DeployedIndex]:
        return [i for (t, _n), i in sorted(self._ready.items()) if t == table]

    def in_state(self, state: IndexState) -> list[DeployedIndex]:
        return [i for _s, i in sorted(self.indexes.items()) if i.state is state]

    def table_differences(self, schema: Schema, table: str) -> list[str]:
        """How ``table`` as ``schema`` declares it differs from its deployed form."""
        if table not in schema.tables:
            return [f"table {table!r} is deployed but no longer declared"]
        if table not in self.tables:
            return [f"table {table!r} is new"]
        out = []
        if self.tables[table] != schema.describe(table):
            out.append(f"table {table!r} has new fields")
        declared = {i.name: i for i in schema.indexes_of(table)}
        for name, index in declared.items():
            deployed = self.ready(table, name)
            if deployed is None:
                out.append(f"index {table}.{name} is new")
            elif not deployed.defines(index):
                out.append(f"index {table}.{name} has new fields")
        out.extend(
            f"index {table}.{i.name} is deployed but no longer declared"
            for i in self.ready_of(table)
            if i.name not in declared
        )
        return out

    def differences(self, schema: Schema) -> list[str]:
        """Everything a deploy of ``schema`` would change (empty: it is deployed)."""
        out: list[str] = []
        for table in sorted(set(schema.tables) | set(self.tables)):
            out.extend(self.table_differences(schema, table))
        return out

    def outdated_tables(self, schema: Schema) -> set[str]:
        """The tables a process serving ``schema`` must not write."""
        return {
            t
            for t in set(schema.tables) | set(self.tables)
            if t in schema.tables and self.table_differences(schema, t)
        }

    def storage_for(self, schema: Schema) -> dict[str, str]:
        """Where each of ``schema``'s indexes lives, for the ones deployed as it declares them."""
        out = {}
        for index in schema.indexes.values():
            deployed = self.ready(index.table, index.name)
            if deployed is not None and deployed.defines(index):
                out[index.declared_name] = deployed.storage
        return out


class NotDeployed(RuntimeError):
    """The code's schema is not the deployed one; ``str()`` says what differs and what to run."""

    def __init__(self, differences: Iterable[str]) -> None:
        self.differences = list(differences)
        listed = "; ".join(self.differences[:8])
        more = len(self.differences) - 8
        if more > 0:
            listed += f"; and {more} more"
        super().__init__(
            f"The app schema is not deployed ({listed}). "
            f"Run `{DEPLOY_COMMAND}` to deploy it, then start the server again."
        )


def deployed_schema(schema: Schema, deployment: Deployment) -> Schema:
    """``schema`` with its indexes where the deployment keeps them; raises ``NotDeployed``
    unless ``schema`` is exactly what is deployed."""
    differences = deployment.differences(schema)
    if differences:
        raise NotDeployed(differences)
    return schema.with_storage(deployment.storage_for(schema))


# ---- reading it -------------------------------------------------------------------------------


async def read_deployment(conn: AsyncConnection, fence: int | None) -> Deployment:
    """The record as ``conn``'s transaction sees it."""
    tables = {r.name: r.fields for r in (await conn.execute(select(schema_tables))).all()}
    indexes = {}
    for r in (await conn.execute(select(schema_indexes))).all():
        indexes[r.storage] = DeployedIndex(
            storage=r.storage,
            table=r.table_name,
            name=r.name,
            fields=tuple(json.loads(r.fields)),
            state=IndexState(r.state),
            started_ts=r.started_ts,
            cursor=None if r.cursor is None else bytes(r.cursor),
            scanned=bool(r.scanned),
        )
    return Deployment(tables, indexes, fence)


_PG_FENCE = text("SELECT pg_sequence_last_value('schema_fence_seq')")


async def read_fence(conn: AsyncConnection, kind: DatabaseKind) -> int:
    if kind is DatabaseKind.POSTGRESQL:
        value = (
            await conn.execute(text("SELECT pg_sequence_last_value('schema_fence_seq')"))
        ).scalar()
    else:
        value = (await conn.execute(select(schema_fence.c.value))).scalar()
    return int(value or 0)


async def lock_commits(conn: AsyncConnection, store: Store) -> None:
    """Take the commit lock in ``conn``'s transaction (PostgreSQL; on SQLite the write
    transaction is the lock). No commit can happen until that transaction ends, and every
    commit made before is visible to its later statements at READ COMMITTED."""
    if store.kind is DatabaseKind.POSTGRESQL:
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(CAST(:k AS bigint))"), {"k": store.commit_lock_key}
        )


async def load_deployment(store: Store) -> Deployment:
    """The deployed schema, consistent with the fence it carries."""
    async with store.engine.connect() as conn, conn.begin():
        # On PostgreSQL, under the commit lock: no deploy is between moving the fence and
        # committing its record, so this fence and this record belong together.
        await lock_commits(conn, store)
        fence = await read_fence(conn, store.kind)
        return await read_deployment(conn, fence)


def creation_index(deployment: Deployment, table: str) -> DeployedIndex | None:
    """The table's ready ``by_creation_time`` index: every document of it, in creation order."""
    return deployment.ready(table, BY_CREATION_TIME)
