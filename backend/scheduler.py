"""Durable scheduled functions: ``ctx.scheduler.run_after`` / ``run_at`` and the worker.

A job is a document in the ``_scheduled_functions`` system table, written in the scheduling
transaction, so it exists exactly when that transaction commits. The worker runs due jobs
after commit:

- a scheduled **mutation** runs in one transaction with the job's change to ``success``: it
  happens exactly once, even with several workers (processes) racing for it, because the loser
  of the race conflicts, retries, and finds the job done;
- a scheduled **action** is first marked ``inProgress`` in its own transaction, then run, then
  marked ``success`` or ``failed``: at most once (a crash mid-action leaves it ``inProgress``).

App code reads its jobs through ``ctx.db.system`` in Convex's shape (``public_job``): the
stored documents keep the engine's own layout (a flat ``state``, ``args`` as an object, an
``error`` field), which the worker's index is built on and which every job written by an
earlier version already has, and the view reshapes them as they are read, so nothing is
migrated. Jobs of the engine's own functions (``_system/...``: mail delivery) share the
table and are hidden from that view and from ``ctx.scheduler.cancel``.

A job carries no identity: it runs as nobody (``ctx.auth`` sees no one), whoever scheduled it,
as in Convex. Carrying the scheduler's session along would let work outlive a sign-out by the
job's whole delay, and would need the session checked again at run time anyway; a job that
acts for a user takes the user's id as an argument, and its function decides what that id may
do. So a job scheduled by a session that has since been revoked runs as nobody too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from backend.errors import ConvexError
from backend.runtime import from_ms, to_ms, wait_for_event
from backend.storage.store import StoreUnavailable
from backend.transactions.readset import WriteSet
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf import logs
from backend.udf.calls import function_call
from backend.udf.context import Auth, MutationCtx
from backend.udf.jobs import (
    TABLE,
    TABLES,
    VIEW,
    JobState,
    ScheduledFunction,
    cancel,
    enqueue,
    is_engine_job,
    public_job,
    resolve_schedulable,
)
from backend.udf.registry import FunctionKind, RegisteredFunction

if TYPE_CHECKING:
    from backend.engine import Engine

log = logging.getLogger("backend.scheduler")
log = logging.getLogger("backend.scheduler")
__all__ = [
    "TABLE",
    "TABLES",
    "VIEW",
    "JobState",
    "ScheduledFunction",
    "SchedulerWorker",
    "cancel",
    "enqueue",
    "is_engine_job",
    "public_job",
    "resolve_schedulable",
]


class SchedulerWorker:
    """Runs due jobs. ``run_due()`` for tests and the harness; ``run_forever()`` in servers."""

    def __init__(self, engine: Engine, *, poll_interval: float = 1.0) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        engine.add_commit_listener(self._on_commit)

    def _on_commit(self, _ts: int, write_set: WriteSet) -> None:
        if write_set.touches(TABLE):
            self._wake.set()

    async def _due(self, limit: int) -> list[dict[str, Any]]:
        now = to_ms(self.engine.runtime.now())

        async def read(db: SystemDatabase) -> list[dict[str, Any]]:
            return await (
                db.query(TABLE)
                .with_index(
                    "by_state", lambda q: q.eq("state", "pending").lte("scheduledTime", now)
                )
                .take(limit)
            )

        return await self.engine.system_read(read)

    async def next_due_ms(self) -> float | None:
        """When the earliest pending job is due (ms since the epoch), or None for none."""

        async def read(db: SystemDatabase) -> dict[str, Any] | None:
            return await db.query(TABLE).with_index("by_state", state="pending").first()

        job = await self.engine.system_read(read)
        return None if job is None else float(job["scheduledTime"])

    async def run_due(self, *, max_rounds: int = 100) -> int:
        """Run every job due now, including jobs those jobs schedule for now. Returns a count."""
        ran = 0
        for _ in range(max_rounds):
            jobs = await self._due(100)
            if not jobs:
                return ran
            for job in jobs:
                await self.run_job(job["_id"])
                ran += 1
        return ran

    async def run_job(self, job_id: str) -> None:
        """Run one job if it is still pending: a mutation in the same transaction as the
        record of its outcome (so exactly once), an action marked running first (so at most
        once). A job's failure is recorded on it, never raised."""
        engine = self.engine
        job = await engine.system_read(lambda db: db.get(job_id))
        if job is None or job["state"] != "pending":
            return
        try:
            target = engine.resolve(job["name"], _kind_of(engine, job["name"]), internal=True)
        except ConvexError as exc:
            await self._finish(job_id, "failed", exc.message)
            return
        if target.kind is FunctionKind.MUTATION:
            await self._run_mutation_job(job_id, target, job["args"])
        else:
            await self._run_action_job(job_id, target, job["args"])

    async def _run_mutation_job(
        self, job_id: str, target: RegisteredFunction[Any, Any, Any], args: dict[str, Any]
    ) -> None:
        engine = self.engine

        async def body(txn: Transaction) -> bool:
            logs.restart()  # a retried attempt's lines replace the lost one's
            db = SystemDatabase(txn)
            current = await db.get(job_id)
            if current is None or current["state"] != "pending":
                return False
            await MutationCtx(engine, txn, Auth(None)).run_mutation(target, args)  # as nobody
            await db.patch(job_id, {"state": "success", "completedTime": to_ms(txn.now)})
            return True

        await engine.environment.fresh()
        try:
            with function_call(target.path, "mutation", None, recent=engine.recent_calls):
                await engine.write(body, function_path=target.path)
        except StoreUnavailable:
            raise  # not the job's failure: it stays pending, and runs once the database is back
        except Exception as exc:  # the job's own failure: record it, keep the worker alive
            log.warning("scheduled %s failed: %s", target.path, exc)
            await self._finish(job_id, "failed", describe_failure(exc))

    async def _run_action_job(
        self, job_id: str, target: RegisteredFunction[Any, Any, Any], args: dict[str, Any]
    ) -> None:
        engine = self.engine

        async def claim(db: SystemDatabase) -> bool:
            current = await db.get(job_id)
            if current is None or current["state"] != "pending":
                return False
            await db.patch(job_id, {"state": "inProgress"})
            return True

        claimed, _ts = await engine.system_write(claim, label="_system/scheduler:claim")
        if not claimed:
            return
        try:
            await engine.run_action(target, args, None, internal=True)
        except Exception as exc:
            log.warning("scheduled %s failed: %s", target.path, exc)
            await self._finish(job_id, "failed", describe_failure(exc))
        else:
            await self._finish(job_id, "success", None)

    async def _finish(self, job_id: str, state: JobState, error: str | None) -> None:
        async def mark(db: SystemDatabase) -> None:
            current = await db.get(job_id)
            if current is None or current["state"] not in ("pending", "inProgress"):
                return  # canceled while it ran: the cancellation stands
            fields: dict[str, Any] = {
                "state": state,
                "completedTime": to_ms(self.engine.runtime.now()),
            }
            if error is not None:
                fields["error"] = error[:2000]
            await db.patch(job_id, fields)

        await self.engine.system_write(mark, label="_system/scheduler:finish")

    async def run_forever(self) -> None:
        """Run jobs as they fall due, woken by commits, until cancelled."""
        while True:
            # Cleared before the round, not after it: a job committed while the round runs
            # wakes the next one at once, instead of waiting out the poll interval.
            self._wake.clear()
            try:
                await self.run_due()
                next_ms = await self.next_due_ms()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:  # logged once per outage by the store; just try again
                next_ms = None
            except Exception:
                log.exception("scheduler round failed; trying again")
                next_ms = None
            wait = self.poll_interval
            if next_ms is not None:
                wait = min(wait, max(0.0, (next_ms - to_ms(self.engine.runtime.now())) / 1000))
            await wait_for_event(self.engine.runtime.timers, self._wake, wait)


def _kind_of(engine: Engine, path: str) -> FunctionKind:
    fn = engine.functions.get(path)
    return fn.kind if fn is not None else FunctionKind.MUTATION


def describe_failure(exc: BaseException) -> str:
    """What a failed job records: the error's code and message, or only its type for a bug."""
    if isinstance(exc, ConvexError):
        return f"{exc.code}: {exc.message}"
    return getattr(exc, "public_message", None) or type(exc).__name__


__all__ = [
    "TABLES",
    "VIEW",
    "SchedulerWorker",
    "cancel",
    "describe_failure",
    "enqueue",
    "from_ms",
    "public_job",
    "resolve_schedulable",
]
