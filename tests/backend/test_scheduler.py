"""Scheduled functions and mail: after commit only, exactly or at most once, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.runtime import FakeClock, wait_for_event
from backend.scheduler import SchedulerWorker
from backend.testing import TestBackend
from tests.apps.basic.functions import jobs
from tests.conftest import basic_app


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    jobs.calls.clear()


async def _jobs(t: TestBackend) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.query("_scheduled_functions").collect())


async def test_a_scheduled_mutation_runs_once_when_due(basic: TestBackend) -> None:
    await basic.mutation("counters:create", {"name": "c"})
    await basic.mutation("counters:schedule_bump", {"name": "c", "seconds": 30})
    basic.clock.advance(seconds=29)
    assert await basic.run_scheduled() == 0
    basic.clock.advance(seconds=1)
    assert await basic.run_scheduled() == 1
    assert await basic.run_scheduled() == 0
    assert (await basic.query("counters:get", {"name": "c"}))["value"] == 1
    (job,) = await _jobs(basic)
    assert job["state"] == "success"


async def test_a_rolled_back_mutation_schedules_nothing(basic: TestBackend) -> None:
    with pytest.raises(ConvexError):
        await basic.mutation("jobs:schedule_effect_then", {"label": "x", "fail": True})
    assert await _jobs(basic) == []
    await basic.mutation("jobs:schedule_effect_then", {"label": "y", "fail": False})
    assert jobs.calls == ["y"]
    (job,) = await _jobs(basic)
    assert job["state"] == "success"


async def test_two_workers_racing_run_a_mutation_job_exactly_once(database_url: str | None) -> None:
    async with TestBackend(database_url, hold_scheduled=True, app=basic_app()) as t:
        await t.mutation("counters:create", {"name": "c"})
        await t.mutation("counters:schedule_bump", {"name": "c", "seconds": 0})
        (job,) = await _jobs(t)
        import asyncio

        await asyncio.gather(*(t.worker.run_job(job["_id"]) for _ in range(5)))
        assert (await t.query("counters:get", {"name": "c"}))["value"] == 1


async def test_a_failing_job_is_recorded_and_the_worker_goes_on(database_url: str | None) -> None:
    async with TestBackend(database_url, hold_scheduled=True, app=basic_app()) as t:
        await t.mutation("counters:schedule_bump", {"name": "missing", "seconds": 0})
        await t.mutation("jobs:schedule_effect_then", {"label": "after", "fail": False})
        assert await t.run_scheduled() == 2
        states = sorted((j["name"], j["state"], j.get("error")) for j in await _jobs(t))
        assert states[0][:2] == ("counters:bump", "failed")
        assert "NOT_FOUND" in str(states[0][2])
        assert states[1][:2] == ("jobs:side_effect", "success")
        assert jobs.calls == ["after"]


async def test_cancel_and_bad_args(basic: TestBackend) -> None:
    job = await basic.mutation("jobs:schedule_and_cancel", {})
    basic.clock.advance(seconds=10)
    await basic.run_scheduled()
    assert jobs.calls == []
    cancelled = await basic.run(lambda ctx: ctx.db.get(job))
    assert cancelled is not None
    assert cancelled["state"] == "canceled"
    with pytest.raises(ConvexError) as info:
        await basic.mutation("jobs:schedule_bad_args", {})
    assert info.value.code == "INVALID_ARGUMENT"


async def test_mail_leaves_only_after_commit(basic: TestBackend) -> None:
    with pytest.raises(ConvexError):
        await basic.mutation("jobs:mail_then", {"to": "a@example.com", "fail": True})
    assert basic.outbox == []
    await basic.mutation("jobs:mail_then", {"to": "b@example.com", "fail": False})
    assert [(m.to, m.subject) for m in basic.outbox] == [("b@example.com", "Hello")]
    (entry,) = await basic.run(lambda ctx: ctx.db.query("_outbox").collect())
    assert entry["state"] == "sent"


async def test_a_job_scheduled_by_a_since_revoked_session_runs_as_nobody(
    database_url: str | None,
) -> None:
    from tests.apps.basic.functions import whoami

    whoami.seen_by_jobs.clear()
    async with TestBackend(database_url, hold_scheduled=True, app=basic_app()) as t:
        ada = await t.sign_up("ada@example.com", "correct horse battery")
        assert await t.run_scheduled() == 1  # the sign-up's confirmation mail
        await ada.mutation("whoami:schedule_both", {"seconds": 60})
        await t.auth.sign_out(ada.token)
        t.clock.advance(seconds=60)
        assert await t.run_scheduled() == 2
        assert whoami.seen_by_jobs == [None, None]


async def test_scheduled_jobs_never_carry_their_schedulers_identity(
    database_url: str | None,
) -> None:
    # As in Convex: the job runs as nobody, whoever scheduled it and whether or not that
    # session still lives; a job that acts for a user takes the user's id as an argument.
    from tests.apps.basic.functions import whoami

    whoami.seen_by_jobs.clear()
    async with TestBackend(database_url, hold_scheduled=True, app=basic_app()) as t:
        ada = await t.sign_up("ada@example.com", "correct horse battery")
        assert await t.run_scheduled() == 1  # the sign-up's confirmation mail
        await ada.mutation("whoami:schedule_both", {"seconds": 0})
        assert await t.run_scheduled() == 2
        assert whoami.seen_by_jobs == [None, None]
        jobs_left = await _jobs(t)
        assert {job["state"] for job in jobs_left} == {"success"}
        assert all(
            set(job)
            <= {
                "_id",
                "_creationTime",
                "name",
                "args",
                "scheduledTime",
                "state",
                "completedTime",
                "error",
            }
            for job in jobs_left
        )


async def test_the_workers_wait_for_a_later_job_is_on_the_runtimes_timers() -> None:
    """``run_forever`` waits for the next due job on the engine's timers: with fake ones, a job
    due in 30 s runs once the fake clock passes it, though the poll interval is an hour of real
    time and no commit wakes the worker."""
    async with TestBackend(app=basic_app(), hold_scheduled=True) as t:
        timers = t.clock.timers()
        t.engine.runtime.timers = timers
        await t.mutation("counters:create", {"name": "c"})
        await t.mutation("counters:schedule_bump", {"name": "c", "seconds": 30})
        worker = SchedulerWorker(t.engine, poll_interval=3600)
        running = asyncio.create_task(worker.run_forever())
        try:
            for _ in range(200):  # until the worker has looked and set its timer
                await asyncio.sleep(0.01)
                if timers.waiting():
                    break
            assert timers.waiting() == 1
            t.clock.advance(seconds=29)
            await asyncio.sleep(0.2)
            assert (await t.query("counters:get", {"name": "c"}))["value"] == 0
            t.clock.advance(seconds=1)
            for _ in range(500):
                if (await t.query("counters:get", {"name": "c"}))["value"] == 1:
                    break
                await asyncio.sleep(0.01)
            assert (await t.query("counters:get", {"name": "c"}))["value"] == 1
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def test_wait_for_event_ends_on_the_event_or_on_the_fake_clock() -> None:
    clock = FakeClock()
    timers = clock.timers()
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_for_event(timers, event, 10))
    await asyncio.sleep(0)
    clock.advance(seconds=9.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(seconds=0.1)
    assert await asyncio.wait_for(waiting, 1) is False
    waiting = asyncio.create_task(wait_for_event(timers, event, 10))
    await asyncio.sleep(0)
    event.set()
    assert await asyncio.wait_for(waiting, 1) is True
    assert timers.waiting() == 0  # the timer of a wait the event ended is cancelled
