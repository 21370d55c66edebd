"""The cron jobs' state: one document per cron in ``_cron_jobs``, its runs in ``_cron_job_logs``.

A cron's document holds its definition (function, arguments, schedule) and its *next run*:
the tick that is due next. Everything that happens to a cron is a serializable transaction
over that document, so several server processes on one database agree without a leader:

- **a mutation's tick** runs in one transaction that checks the document still names that
  tick, runs the mutation and moves ``nextRun`` on. Two processes racing for a tick conflict;
  the loser retries, finds ``nextRun`` moved, and does nothing. A process killed mid-run
  committed nothing, and the tick is still due for the others: exactly once.
- **an action's tick** is claimed first (``inProgress``, with a claim token and a lease the
  running process keeps renewing), then run, then finished in a transaction that checks the
  claim: at most once, as Convex runs actions. A claim whose lease ran out (its process
  died) is recorded as failed by whoever notices, and the cron moves on.

Runs are recorded as Convex records them, in a log of their own (``_cron_job_logs``: the tick,
when it completed, ``success`` / ``failed`` with the error / ``skipped`` with how many ticks),
not among the scheduled functions; the newest ``KEEP_RUNS`` per cron are kept. Neither table is
readable by app code (they are not in ``backend/system.py``'s allow-list).

Deploying the crons (``sync``) makes the documents match the code in one transaction: new
crons are inserted (an interval's first tick is now, a clock schedule's its next match), a
changed schedule starts over on the new one, a changed function or argument takes effect at the
next tick, and a cron the code no longer declares is deleted with its log. Every server does it
as it starts, and so the crons of the newest code to start are the deployed ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel

from backend.crons import schedule as schedules
from backend.crons.registry import CronJob, Crons
from backend.errors import ConvexError
from backend.scheduler import resolve_schedulable
from backend.schema_definition import TableDef, table
from backend.transactions.transaction import SystemDatabase

if TYPE_CHECKING:
    from backend.engine import Engine

JOBS: Final = "_cron_jobs"
LOGS: Final = "_cron_job_logs"
KEEP_RUNS: Final = 100
MAX_CRONS: Final = 1000
CronState = Literal["pending", "inProgress"]
RunState = Literal["success", "failed", "skipped"]


class CronJobState(BaseModel):
    name: str
    function: str
    args: dict[str, Any]
    schedule: dict[str, Any]
    nextRun: float
    prevRun: float | None = None
    state: CronState = "pending"
    claim: str | None = None  # who runs the action of this tick, while it is inProgress
    leaseUntil: float | None = None  # ... and until when, unless renewed
    logged: int = 0  # entries in the log, up to KEEP_RUNS


class CronRun(BaseModel):
    cron: str
    function: str
    args: dict[str, Any]
    scheduledTime: float  # the tick
    completedTime: float
    state: RunState
    error: str | None = None
    skipped: int | None = None


TABLES: dict[str, TableDef] = {
    JOBS: table(CronJobState).index("by_name", "name").index("by_next_run", "nextRun"),
    LOGS: table(CronRun).index("by_cron", "cron", "scheduledTime"),
}


@dataclass(frozen=True)
class Declared:
    """A cron as the code declares it, its function resolved to a path."""

    name: str
    function: str
    args: dict[str, Any]
    schedule: dict[str, Any]


@dataclass
class CronDiff:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


def declared_crons(engine: Engine) -> dict[str, Declared]:
    """The app's crons, each checked against its function: it must be a mutation or an action
    of this app, and its arguments must fit. Raises ``TypeError`` naming the cron."""
    crons = engine.app.extensions.get(Crons.__app_extension__)
    if crons is None:
        return {}
    if not isinstance(crons, Crons):
        raise TypeError("the app's crons must be a Crons()")
    if len(crons.jobs) > MAX_CRONS:
        raise TypeError(f"an app declares at most {MAX_CRONS} crons")
    found: dict[str, Declared] = {}
    for name, job in crons.jobs.items():
        try:
            target = resolve_schedulable(engine, job.function)
            target.validate_args(job.args)
        except ConvexError as exc:
            raise TypeError(f"cron {name!r}: {exc.message}") from None
        if str(target.path).startswith("_"):
            raise TypeError(f"cron {name!r}: {target.path} is the engine's own function")
        found[name] = Declared(name, str(target.path), dict(job.args), dict(job.schedule))
    return found


async def stored_crons(db: SystemDatabase) -> dict[str, dict[str, Any]]:
    rows = await db.query(JOBS).with_index("by_name").take(MAX_CRONS + 1)
    return {row["name"]: row for row in rows}


def differences(declared: Mapping[str, Declared], stored: Mapping[str, Any]) -> CronDiff:
    diff = CronDiff()
    for name, want in declared.items():
        have = stored.get(name)
        if have is None:
            diff.added.append(name)
        elif (have["function"], have["args"], have["schedule"]) != (
            want.function,
            want.args,
            want.schedule,
        ):
            diff.updated.append(name)
    diff.deleted = [name for name in stored if name not in declared]
    return diff


async def apply(db: SystemDatabase, declared: Mapping[str, Declared]) -> CronDiff:
    """Make ``_cron_jobs`` match ``declared``, in this transaction."""
    now = db.now_ms
    stored = await stored_crons(db)
    diff = differences(declared, stored)
    for name in diff.added:
        want = declared[name]
        await db.insert(
            JOBS,
            {
                "name": name,
                "function": want.function,
                "args": want.args,
                "schedule": want.schedule,
                "nextRun": schedules.first_run(want.schedule, now),
                "state": "pending",
            },
        )
    for name in diff.updated:
        want, have = declared[name], stored[name]
        fields: dict[str, Any] = {"function": want.function, "args": want.args}
        if have["schedule"] != want.schedule:
            fields["schedule"] = want.schedule
            if have["state"] == "pending":  # a running action's finish takes the new schedule
                fields["nextRun"] = schedules.first_run(want.schedule, now)
        await db.patch(have["_id"], fields)
    for name in diff.deleted:
        for run in await db.query(LOGS).with_index("by_cron", cron=name).collect():
            await db.delete_read(run)
        await db.delete_read(stored[name])
    return diff


def still_due(cron: Mapping[str, Any] | None, tick: float) -> bool:
    """Whether ``cron`` is still waiting to run ``tick`` (no one has run or claimed it)."""
    return cron is not None and cron["state"] == "pending" and cron["nextRun"] == tick


def holds(cron: Mapping[str, Any] | None, claim: str) -> bool:
    """Whether ``claim`` still holds ``cron``'s running tick."""
    return cron is not None and cron["state"] == "inProgress" and cron.get("claim") == claim


async def complete(
    db: SystemDatabase,
    cron: Mapping[str, Any],
    outcome: RunState,
    error: str | None = None,
) -> float:
    """Record the run of ``cron``'s current tick and move on to the next one (skipping the
    ticks that fell due meanwhile, recorded as one ``skipped`` entry). Returns the next tick."""
    tick = float(cron["nextRun"])
    now = db.now_ms
    following, skipped = schedules.next_run(cron["schedule"], tick, now)
    logged = int(cron.get("logged", 0))
    logged = await _log(db, cron, logged, tick, now, outcome, error=error)
    if skipped:
        first_skipped, _ = schedules.next_run(cron["schedule"], tick, tick)
        logged = await _log(db, cron, logged, first_skipped, now, "skipped", skipped=skipped)
    await db.patch(
        cron["_id"],
        {
            "nextRun": following,
            "prevRun": tick,
            "state": "pending",
            "claim": None,
            "leaseUntil": None,
            "logged": logged,
        },
    )
    return following


async def _log(
    db: SystemDatabase,
    cron: Mapping[str, Any],
    logged: int,
    tick: float,
    now: float,
    state: RunState,
    *,
    error: str | None = None,
    skipped: int | None = None,
) -> int:
    entry: dict[str, Any] = {
        "cron": cron["name"],
        "function": cron["function"],
        "args": cron["args"],
        "scheduledTime": tick,
        "completedTime": now,
        "state": state,
    }
    if error is not None:
        entry["error"] = error[:2000]
    if skipped is not None:
        entry["skipped"] = skipped
    await db.insert(LOGS, entry)
    if logged < KEEP_RUNS:
        return logged + 1
    oldest = await db.query(LOGS).with_index("by_cron", cron=cron["name"]).first()
    if oldest is not None:
        await db.delete_read(oldest)
    return logged


async def runs(db: SystemDatabase, name: str, *, limit: int = KEEP_RUNS) -> list[dict[str, Any]]:
    """The recorded runs of one cron, oldest first."""
    return await db.query(LOGS).with_index("by_cron", cron=name).take(limit)


__all__ = [
    "JOBS",
    "KEEP_RUNS",
    "LOGS",
    "TABLES",
    "CronDiff",
    "CronJob",
    "Declared",
    "apply",
    "complete",
    "declared_crons",
    "differences",
    "holds",
    "runs",
    "still_due",
    "stored_crons",
]
