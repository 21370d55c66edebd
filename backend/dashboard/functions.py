"""What the dashboard reads and does: tables and documents, edits, a function runner,
scheduled jobs and crons, the audit log, the deployed schema.

Each write is one audited system mutation: a document edited, inserted or deleted, a job
canceled, a function run, each leaves an ``admin.*`` event in ``_audit_events`` beside the
change it made (a run is recorded whether or not the function succeeded).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from backend import scheduler
from backend.audit import log as audit
from backend.auth.tables import SESSIONS, USERS
from backend.codegen.api import describe
from backend.codegen.typescript import ts_type
from backend.crons import jobs as cron_jobs
from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.schema_definition import BY_CREATION_TIME, SYSTEM_FIELDS
from backend.transactions.transaction import SystemDatabase
from backend.udf.app import canonical_path
from backend.udf.context import ActionCtx, Identity, MutationCtx, QueryCtx
from backend.udf.registry import (
    FunctionKind,
    internal_action,
    internal_mutation,
    internal_query,
)
from backend.udf.system_context import SystemContext, engine_of

PREFIX = "_system/dashboard"
MAX_ROWS = 500
RUN_AS_TTL = timedelta(minutes=5)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_ROWS:
        raise invalid_argument(f"limit is 1 to {MAX_ROWS}", "limit")
    return limit


def _app_table(system: SystemContext, table: str) -> str:
    if table.startswith("_") or table not in system.engine.app.schema.tables:
        raise invalid_argument(f"no app table {table[:64]!r}", "table")
    return table


def _table_of(system: SystemContext, doc_id: str) -> str:
    table = system.db.txn.schema.table_of_id(doc_id)
    if table is None or table.startswith("_"):
        raise invalid_argument(f"{doc_id[:64]!r} is not the id of an app document", "id")
    return table


def _fields(document: Mapping[str, Any]) -> dict[str, Any]:
    """A document as edited: its system fields dropped (they cannot be written)."""
    return {k: v for k, v in document.items() if k not in SYSTEM_FIELDS}


async def _record(system: SystemContext, event: audit.EventKind, **fields: Any) -> None:
    client = system.client
    await audit.record(
        system.db,
        event,
        method="dashboard",
        ipAddress=client.ip_address if client else None,
        **fields,
    )


# ---- tables and documents ---------------------------------------------------------------


@internal_query
async def tables(ctx: QueryCtx) -> list[dict[str, Any]]:
    """The app's tables, each with its indexes (``by_creation_time`` first)."""
    schema = SystemContext.of(ctx).engine.app.schema
    out = []
    for name in sorted(schema.tables):
        indexes = [{"name": BY_CREATION_TIME, "fields": []}]
        indexes += [
            {"name": index, "fields": list(fields)}
            for index, fields in schema.tables[name].indexes.items()
        ]
        out.append({"name": name, "indexes": indexes})
    return out


@internal_query
async def documents(
    ctx: QueryCtx,
    table: str,
    index: str = BY_CREATION_TIME,
    values: list[Any] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A table's newest documents, or those whose first index fields equal ``values``."""
    system = SystemContext.of(ctx)
    _app_table(system, table)
    fields = system.engine.app.schema.tables[table].indexes.get(index)
    if fields is None and index != BY_CREATION_TIME:
        raise invalid_argument(f"table {table!r} has no index {index[:64]!r}", "index")
    values = values or []
    if len(values) > len(fields or ()):
        raise invalid_argument("more values than the index has fields", "values")
    equal = dict(zip(fields or (), values, strict=False))
    query = system.db.query(table).with_index(index, **equal).order("desc")
    return await query.take(_limit(limit))


@internal_mutation
async def replaceDocument(ctx: MutationCtx, id: str, document: dict[str, Any]) -> None:
    """Replace a document's fields (its ``_id`` and ``_creationTime`` stay); the schema
    checks them as it checks any write."""
    system = SystemContext.of(ctx)
    table = _table_of(system, id)
    if await system.db.get(id) is None:
        raise ConvexError(ErrorCode.NOT_FOUND, "no such document")
    await system.db.replace(id, _fields(document))
    await _record(system, audit.EventKind.ADMIN_EDIT, outcome="replaced", resource=id, scope=table)


@internal_mutation
async def insertDocument(ctx: MutationCtx, table: str, document: dict[str, Any]) -> str:
    system = SystemContext.of(ctx)
    _app_table(system, table)
    doc_id = await system.db.insert(table, _fields(document))
    await _record(
        system, audit.EventKind.ADMIN_EDIT, outcome="inserted", resource=doc_id, scope=table
    )
    return doc_id


@internal_mutation
async def deleteDocument(ctx: MutationCtx, id: str) -> None:
    system = SystemContext.of(ctx)
    table = _table_of(system, id)
    if await system.db.get(id) is None:
        raise ConvexError(ErrorCode.NOT_FOUND, "no such document")
    await system.db.delete(id)
    await _record(system, audit.EventKind.ADMIN_EDIT, outcome="deleted", resource=id, scope=table)


# ---- the function runner -----------------------------------------------------------------


@internal_query
async def functions(ctx: QueryCtx) -> list[dict[str, Any]]:
    """Every function but the engine's system ones: path, kind, visibility, and the
    TypeScript of its arguments and result (as the generated API has them)."""
    engine = SystemContext.of(ctx).engine
    out = []
    for path, fn in sorted(engine.functions.items()):
        if path.startswith("_"):
            continue
        typed = describe(path, fn)
        out.append(
            {
                "path": path,
                "kind": typed.kind,
                "visibility": typed.visibility,
                "args": typed.args,
                "returns": typed.returns,
            }
        )
    return out


@internal_query
async def users(ctx: QueryCtx, limit: int = 200) -> list[dict[str, Any]]:
    """Users to run a function as: ``{id, email, name}``, newest first."""
    db = SystemContext.of(ctx).db
    rows = await db.query(USERS).order("desc").take(_limit(limit))
    return [{"id": u["_id"], "email": u.get("email"), "name": u.get("name")} for u in rows]


async def _session_for(ctx: ActionCtx, user_id: str) -> str:
    """A session for running as ``user_id``: real (``ctx.auth`` sees the user), signed in at
    time zero (so never fresh for a sensitive action), short-lived, deleted after the run."""
    engine = engine_of(ctx)

    async def create(db: SystemDatabase) -> str:
        if db.txn.schema.table_of_id(user_id) != USERS or await db.get(user_id) is None:
            raise invalid_argument("asUser is not the id of a user", "asUser")
        now = db.now_ms
        return await db.insert(
            SESSIONS,
            {
                "userId": user_id,
                "tokenHash": f"dashboard-run:{now}:{user_id}",  # no token can hash to it
                "createdAt": 0.0,
                "updatedAt": now,
                "expiresAt": now + RUN_AS_TTL.total_seconds() * 1000,
                "userAgent": "dashboard (run as)",
            },
        )

    session_id, _ = await engine.system_write(create, label=f"{PREFIX}:run")
    return session_id


@internal_action
async def run(
    ctx: ActionCtx, path: str, args: dict[str, Any], asUser: str | None = None
) -> dict[str, Any]:
    """Run any function (internal ones too) as ``asUser`` (a user id) or as nobody; answers
    ``{value}`` or fails with the function's error. Recorded in the audit log either way."""
    engine = engine_of(ctx)
    canonical = canonical_path(path)
    fn = engine.functions.get(canonical)
    if fn is None or canonical.startswith("_"):
        raise ConvexError(ErrorCode.NOT_FOUND, f"no function {canonical[:128]!r}", path=canonical)
    session_id = await _session_for(ctx, asUser) if asUser is not None else None
    identity = Identity(subject=asUser, session_id=session_id) if asUser else None
    outcome = "failed"
    try:
        if fn.kind is FunctionKind.QUERY:
            value = await engine.run_query(fn, args, identity, internal=True)
        elif fn.kind is FunctionKind.MUTATION:
            value = (await engine.run_mutation(fn, args, identity, internal=True)).value
        else:
            value = await engine.run_action(fn, args, identity, internal=True)
        outcome = "succeeded"
        return {"value": value}
    finally:

        async def finish(db: SystemDatabase) -> None:
            if session_id is not None:
                await db.delete(session_id)
            system = engine.system_context(db)
            await _record(
                system,
                audit.EventKind.ADMIN_RUN,
                outcome=outcome,
                action=canonical,
                userId=asUser,
                detail=fn.kind.value,
            )

        await engine.system_write(finish, label=f"{PREFIX}:run")


# ---- scheduled jobs and crons ------------------------------------------------------------


@internal_query
async def scheduled(ctx: QueryCtx, state: str | None = None, limit: int = 100) -> list[Any]:
    """The app's scheduled functions, as ``ctx.db.system`` shows them, newest first."""
    db = SystemContext.of(ctx).db
    query = db.query(scheduler.TABLE)
    if state is not None:
        query = query.with_index("by_state", state=state)
    rows = []
    async for job in query.order("desc"):
        shown = scheduler.public_job(job)
        if shown is not None:
            rows.append(shown)
            if len(rows) >= _limit(limit):
                break
    return rows


@internal_mutation
async def cancelScheduled(ctx: MutationCtx, id: str) -> None:
    """Cancel a pending (or running) scheduled function, as ``ctx.scheduler.cancel`` does."""
    system = SystemContext.of(ctx)
    await scheduler.cancel(system.db, id)
    await _record(system, audit.EventKind.ADMIN_CANCEL, outcome="canceled", resource=id)


@internal_mutation
async def cancelAllScheduled(ctx: MutationCtx, name: str | None = None) -> int:
    """Cancel every pending scheduled function (of the function ``name`` only, if given), up
    to ``MAX_ROWS`` per call; answers how many were canceled (call again for the rest)."""
    system = SystemContext.of(ctx)
    pending = system.db.query(scheduler.TABLE).with_index("by_state", state="pending")
    chosen: list[str] = []
    async for job in pending:  # read first, then write: the walk never sees its own writes
        if scheduler.is_engine_job(job) or (name is not None and job["name"] != name):
            continue
        chosen.append(job["_id"])
        if len(chosen) >= MAX_ROWS:
            break
    for job_id in chosen:
        await scheduler.cancel(system.db, job_id)
    canceled = len(chosen)
    await _record(system, audit.EventKind.ADMIN_CANCEL, outcome=f"canceled {canceled}", action=name)
    return canceled


@internal_query
async def crons(ctx: QueryCtx, runs: int = 10) -> list[dict[str, Any]]:
    """The deployed crons, each with its next tick and its latest runs."""
    db = SystemContext.of(ctx).db
    out = []
    for job in await db.query(cron_jobs.JOBS).with_index("by_name").collect():
        latest = (
            await db.query(cron_jobs.LOGS)
            .with_index("by_cron", cron=job["name"])
            .order("desc")
            .take(_limit(runs))
        )
        out.append(
            {
                "name": job["name"],
                "function": job["function"],
                "args": job["args"],
                "schedule": job["schedule"],
                "nextRun": job["nextRun"],
                "prevRun": job.get("prevRun"),
                "state": job.get("state", "pending"),
                "runs": [
                    {k: run.get(k) for k in ("scheduledTime", "completedTime", "state", "error")}
                    for run in latest
                ],
            }
        )
    return out


# ---- the audit log and the schema --------------------------------------------------------


@internal_query
async def auditLog(
    ctx: QueryCtx,
    userId: str | None = None,
    event: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit events, newest first: one user's (by index), of one kind, about one action."""
    db = SystemContext.of(ctx).db
    query = db.query(audit.TABLE)
    if userId is not None:
        query = query.with_index("by_user", userId=userId)
    if event is not None:
        query = query.filter(lambda doc: doc.get("event") == event)
    if action is not None:
        query = query.filter(lambda doc: doc.get("action") == action)
    return await query.order("desc").take(_limit(limit))


@internal_query
async def schema(ctx: QueryCtx) -> dict[str, Any]:
    """The app's tables as deployed: each one's document type and its indexes' states."""
    engine = SystemContext.of(ctx).engine
    deployment = engine.deployment
    app_schema = engine.app.schema
    out = []
    for name in sorted(app_schema.tables):
        definition = app_schema.tables[name]
        deployed = [i for i in deployment.indexes.values() if i.table == name] if deployment else []
        out.append(
            {
                "name": name,
                "document": ts_type(definition.model) if definition.model else "any",
                "deployed": deployment is not None and name in deployment.tables,
                "indexes": [
                    {
                        "name": i.name,
                        "fields": list(i.fields),
                        "state": i.state.value,
                        "storage": i.storage,
                    }
                    for i in sorted(deployed, key=lambda i: (i.name, i.storage))
                ],
            }
        )
    return {"tables": out, "outdated": sorted(engine.outdated)}


FUNCTIONS: dict[str, Any] = {
    f"{PREFIX}:{fn.__name__}": fn
    for fn in (
        tables,
        documents,
        replaceDocument,
        insertDocument,
        deleteDocument,
        functions,
        users,
        run,
        scheduled,
        cancelScheduled,
        cancelAllScheduled,
        crons,
        auditLog,
        schema,
    )
}
