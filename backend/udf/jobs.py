"""The ``_scheduled_functions`` table: queueing a job, cancelling one, and its view for apps.

``ctx.scheduler`` (``udf/context.py``) writes here inside the caller's transaction; the worker
that runs due jobs (``backend/scheduler.py``) reads here. Keeping the table apart from the
worker keeps the import graph acyclic: contexts need the queue, the worker needs contexts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.runtime import to_ms
from backend.schema_definition import SystemView, TableDef, table
from backend.transactions.transaction import SystemDatabase
from backend.udf.registry import FunctionKind, RegisteredFunction

if TYPE_CHECKING:
    from backend.engine import Engine

TABLE = "_scheduled_functions"
JobState = Literal["pending", "inProgress", "success", "failed", "canceled"]


class ScheduledFunction(BaseModel):
    name: str
    args: dict[str, Any]
    scheduledTime: float
    state: JobState
    completedTime: float | None = None
    error: str | None = None


TABLES: dict[str, TableDef] = {
    TABLE: table(ScheduledFunction).index("by_state", "state", "scheduledTime"),
}


def is_engine_job(job: Mapping[str, Any]) -> bool:
    """A job of one of the engine's own functions (their paths start with ``_``)."""
    return str(job.get("name", "")).startswith("_")


def public_job(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stored job as Convex shows it to app code (``ctx.db.system``), or None for one of
    the engine's own: ``{_id, _creationTime, name, args: [args], scheduledTime,
    completedTime?, state: {kind, error?}}``."""
    if is_engine_job(job):
        return None
    state: dict[str, Any] = {"kind": job["state"]}
    if job["state"] == "failed":
        state["error"] = job.get("error") or ""
    shown: dict[str, Any] = {
        "_id": job["_id"],
        "_creationTime": job["_creationTime"],
        "name": job["name"],
        "args": [job["args"]],
        "scheduledTime": job["scheduledTime"],
    }
    if job.get("completedTime") is not None:
        shown["completedTime"] = job["completedTime"]
    shown["state"] = state
    return shown


VIEW = SystemView(shape=public_job)
"""``_scheduled_functions`` as app code reads it (registered in ``backend/system.py``)."""


async def enqueue(
    engine: Engine,
    db: SystemDatabase,
    when: datetime,
    fn: RegisteredFunction[Any, Any, Any] | str,
    args: dict[str, Any],
) -> str:
    target = resolve_schedulable(engine, fn)
    target.validate_args(args)  # fail now, in the caller's transaction, not later
    return await db.insert(
        TABLE,
        {"name": target.path, "args": args, "scheduledTime": to_ms(when), "state": "pending"},
    )


def resolve_schedulable(engine: Engine, fn: Any) -> RegisteredFunction[Any, Any, Any]:
    """The mutation or action behind a reference or a path (internal ones included).
    ``INVALID_ARGUMENT`` for a query or anything else, ``NOT_FOUND`` for no such function."""
    if isinstance(fn, RegisteredFunction):
        if fn.kind is FunctionKind.QUERY:
            raise invalid_argument("only mutations and actions can be scheduled", "fn")
        return engine.resolve(fn, fn.kind, internal=True)
    for kind in (FunctionKind.MUTATION, FunctionKind.ACTION):
        try:
            return engine.resolve(fn, kind, internal=True)
        except ConvexError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise
    raise invalid_argument(f"{fn!r} is not a mutation or an action", "fn")


async def cancel(db: SystemDatabase, job_id: Any) -> None:
    """``ctx.scheduler.cancel``: as in Convex, a job that has not finished is canceled (a
    pending one never runs; an action already running goes on, but its outcome is not
    recorded over the cancellation); a finished one is left as it is. ``NOT_FOUND`` for a job
    that does not exist or is the engine's own; ``INVALID_ARGUMENT`` for any other id."""
    if db.txn.schema.table_of_id(job_id) != TABLE:
        raise invalid_argument(f"{str(job_id)[:64]!r} is not a scheduled function's id", "id")
    job = await db.get(job_id)
    if job is None or is_engine_job(job):
        raise ConvexError(ErrorCode.NOT_FOUND, "no such scheduled function")
    if job["state"] in ("pending", "inProgress"):
        await db.patch(job_id, {"state": "canceled", "completedTime": db.now_ms})
