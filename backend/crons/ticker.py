"""``CronTicker``: deploys the app's crons and runs their ticks as they fall due.

Every server process runs one (``run_forever``, beside the scheduler's worker); the harness
drives one by its fake clock (``run_due``). How several of them agree on each tick, and what
is recorded, is in ``backend/crons/jobs.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Coroutine, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from backend.crons import jobs
from backend.errors import ConvexError
from backend.runtime import to_ms, wait_for_event
from backend.scheduler import describe_failure
from backend.storage.store import StoreUnavailable
from backend.transactions.readset import WriteSet
from backend.transactions.transaction import SystemDatabase
from backend.udf import logs
from backend.udf.calls import function_call
from backend.udf.context import Auth, MutationCtx
from backend.udf.registry import FunctionKind, RegisteredFunction

if TYPE_CHECKING:
    from backend.engine import Engine

log = logging.getLogger("backend.crons")
LEASE = timedelta(minutes=5)
INTERRUPTED = "the server running this action stopped before it finished"


class CronTicker:
    """Runs the crons of one engine. ``sync()`` deploys the app's crons; ``run_due()`` runs
    every tick due now (tests); ``run_forever()`` runs ticks as they fall due (servers).

    ``lease`` is how long a claimed action's tick stays claimed without news from the process
    running it (which renews it every third of that while the action runs); when it runs out,
    the tick is recorded as failed and the cron goes on.
    """

    def __init__(
        self, engine: Engine, *, poll_interval: float = 1.0, lease: timedelta = LEASE
    ) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.lease = lease
        self._running: dict[str, asyncio.Task[int]] = {}
        # crons whose last attempt broke (not the function: the engine), by when to try again
        self._resting: dict[str, float] = {}
        self._wake = asyncio.Event()
        engine.add_commit_listener(self._on_commit)

    def _on_commit(self, _ts: int, write_set: WriteSet) -> None:
        if any(name.startswith(jobs.JOBS + ".") for name in write_set.keys):
            self._wake.set()

    # ---- deploying ----------------------------------------------------------------------

    async def sync(self) -> jobs.CronDiff:
        """Make the stored crons match the app's: start the new, stop the removed, reschedule
        the changed. Raises ``TypeError`` for a cron whose function or arguments are wrong."""
        declared = jobs.declared_crons(self.engine)
        stored = await self.engine.system_read(jobs.stored_crons)
        if not jobs.differences(declared, stored):
            return jobs.CronDiff()

        async def apply(db: SystemDatabase) -> jobs.CronDiff:
            return await jobs.apply(db, declared)

        diff, _ts = await self.engine.system_write(apply, label="_system/crons:deploy")
        if diff:
            log.info(
                "crons deployed: added %s, updated %s, deleted %s",
                diff.added,
                diff.updated,
                diff.deleted,
            )
        return diff

    # ---- running ticks ------------------------------------------------------------------

    async def run_due(self) -> int:
        """Run every tick due by the engine's clock, and wait for them; returns how many ran
        (a tick someone else ran first, or one that is recovered, does not count)."""
        started = await self._start_due()
        return sum(await asyncio.gather(*started))

    async def _start_due(self) -> list[asyncio.Task[int]]:
        now = self.engine.runtime.now_ms()
        crons = await self.engine.system_read(jobs.stored_crons)
        started = []
        for cron in self._ours(crons.values()):
            work: Coroutine[Any, Any, int]
            if cron["state"] == "pending" and cron["nextRun"] <= now:
                work = self._run_tick(cron)
            elif cron["state"] == "inProgress" and (cron.get("leaseUntil") or 0) <= now:
                work = self._recover(cron)
            else:
                continue
            task = asyncio.create_task(self._guarded(cron, work))
            self._running[cron["_id"]] = task
            task.add_done_callback(functools.partial(self._done, str(cron["_id"])))
            started.append(task)
        return started

    def _done(self, cron_id: str, _task: asyncio.Task[int]) -> None:
        self._running.pop(cron_id, None)

    def _ours(self, crons: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The crons this process may act on now: not running here, not resting after a
        broken attempt, and naming a function this server's app has (a newer server may
        have deployed one it lacks: that cron is the newer servers' to run)."""
        clock = self.engine.runtime.monotonic()
        for cron in crons:
            if cron["_id"] in self._running or self._resting.get(cron["_id"], 0) > clock:
                continue
            if self._target(cron) is None:
                continue
            yield cron

    async def _next_wake_ms(self) -> float | None:
        crons = await self.engine.system_read(jobs.stored_crons)
        times = [
            cron["nextRun"] if cron["state"] == "pending" else (cron.get("leaseUntil") or 0)
            for cron in self._ours(crons.values())
        ]
        return min(times, default=None)

    async def _guarded(self, cron: dict[str, Any], work: Coroutine[Any, Any, int]) -> int:
        try:
            return await work
        except StoreUnavailable:  # logged once per outage by the store; the tick stays due
            self._resting[cron["_id"]] = self.engine.runtime.monotonic() + self.poll_interval
            return 0
        except Exception:
            log.exception("cron %r: its tick could not be run; trying again", cron["name"])
            self._resting[cron["_id"]] = self.engine.runtime.monotonic() + self.poll_interval
            return 0

    def _target(self, cron: dict[str, Any]) -> RegisteredFunction[Any, Any, Any] | None:
        found = self.engine.functions.get(cron["function"])
        if found is None or found.kind is FunctionKind.QUERY:
            return None
        return found

    async def _run_tick(self, cron: dict[str, Any]) -> int:
        target = self._target(cron)
        assert target is not None  # _ours() let through only crons this app can run
        if target.kind is FunctionKind.MUTATION:
            return await self._run_mutation_tick(cron, target)
        return await self._run_action_tick(cron, target)

    async def _run_mutation_tick(
        self, cron: dict[str, Any], target: RegisteredFunction[Any, Any, Any]
    ) -> int:
        engine, cron_id, tick = self.engine, cron["_id"], cron["nextRun"]

        async def run(db: SystemDatabase) -> bool:
            logs.restart()  # a retried attempt's lines replace the lost one's
            current = await db.get(cron_id)
            if current is None or not jobs.still_due(current, tick):
                return False  # another process ran it, or the cron was removed
            # as nobody, as scheduled functions run
            await MutationCtx(engine, db.txn, Auth(None)).run_mutation(target, current["args"])
            await jobs.complete(db, current, "success")
            return True

        await engine.environment.fresh()
        try:
            with function_call(target.path, "mutation", None, recent=engine.recent_calls):
                ran, _ts = await engine.system_write(run, label=target.path or "_system/crons")
        except StoreUnavailable:
            raise
        except Exception as exc:  # the mutation's own failure: nothing of it was kept
            log.warning("cron %r: %s failed: %s", cron["name"], target.path, exc)
            return await self._finish_failed(cron_id, tick, describe_failure(exc))
        return 1 if ran else 0

    async def _finish_failed(self, cron_id: str, tick: float, error: str) -> int:
        async def record(db: SystemDatabase) -> bool:
            current = await db.get(cron_id)
            if current is None or not jobs.still_due(current, tick):
                return False
            await jobs.complete(db, current, "failed", error)
            return True

        recorded, _ts = await self.engine.system_write(record, label="_system/crons:failed")
        return 1 if recorded else 0

    async def _run_action_tick(
        self, cron: dict[str, Any], target: RegisteredFunction[Any, Any, Any]
    ) -> int:
        engine, cron_id, tick = self.engine, cron["_id"], cron["nextRun"]
        claim = engine.runtime.random.token_bytes(12).hex()

        async def take(db: SystemDatabase) -> dict[str, Any] | None:
            current = await db.get(cron_id)
            if current is None or not jobs.still_due(current, tick):
                return None
            lease_until = db.now_ms + self.lease.total_seconds() * 1000
            await db.patch(
                cron_id, {"state": "inProgress", "claim": claim, "leaseUntil": lease_until}
            )
            return current

        taken, _ts = await engine.system_write(take, label="_system/crons:claim")
        if taken is None:
            return 0
        holding = asyncio.create_task(self._hold(cron_id, claim))
        error: str | None = None
        try:
            await engine.run_action(target, taken["args"], None, internal=True)
        except Exception as exc:
            log.warning("cron %r: %s failed: %s", cron["name"], target.path, exc)
            error = describe_failure(exc)
        finally:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding

        async def finish(db: SystemDatabase) -> bool:
            current = await db.get(cron_id)
            if not jobs.holds(current, claim):
                return False  # the lease ran out and the tick was recorded as interrupted
            assert current is not None
            await jobs.complete(db, current, "failed" if error else "success", error)
            return True

        finished, _ts = await engine.system_write(finish, label="_system/crons:finish")
        return 1 if finished else 0

    async def _hold(self, cron_id: str, claim: str) -> None:
        """Renew the claim's lease while the action runs (every third of the lease)."""
        while True:
            await self.engine.runtime.timers.sleep(self.lease.total_seconds() / 3)

            async def renew(db: SystemDatabase) -> bool:
                current = await db.get(cron_id)
                if not jobs.holds(current, claim):
                    return False
                until = db.now_ms + self.lease.total_seconds() * 1000
                await db.patch(cron_id, {"leaseUntil": until})
                return True

            try:
                held, _ts = await self.engine.system_write(renew, label="_system/crons:lease")
            except (StoreUnavailable, ConvexError):
                continue  # try again at the next renewal; the lease has two more thirds
            if not held:
                return

    async def _recover(self, cron: dict[str, Any]) -> int:
        """Record a claimed tick whose process stopped renewing its lease as failed."""
        cron_id, claim = cron["_id"], cron.get("claim")

        async def record(db: SystemDatabase) -> bool:
            current = await db.get(cron_id)
            if current is None or not jobs.holds(current, str(claim)):
                return False
            if (current.get("leaseUntil") or 0) > db.now_ms:
                return False  # renewed meanwhile: its process is alive
            await jobs.complete(db, current, "failed", INTERRUPTED)
            return True

        recovered, _ts = await self.engine.system_write(record, label="_system/crons:recover")
        if recovered:
            log.warning("cron %r: %s", cron["name"], INTERRUPTED)
        return 0

    async def run_forever(self) -> None:
        """Run ticks as they fall due, woken by changes to the crons, until cancelled."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self._start_due()
                    next_ms = await self._next_wake_ms()
                except asyncio.CancelledError:
                    raise
                except StoreUnavailable:
                    next_ms = None
                except Exception:
                    log.exception("cron round failed; trying again")
                    next_ms = None
                wait = self.poll_interval
                if next_ms is not None:
                    now = to_ms(self.engine.runtime.now())
                    wait = min(wait, max(0.0, (next_ms - now) / 1000))
                await wait_for_event(self.engine.runtime.timers, self._wake, wait)
        finally:
            running = list(self._running.values())
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


__all__ = ["INTERRUPTED", "LEASE", "CronTicker"]
