"""Cron jobs driven by the harness's fake clock, on both databases: each tick runs once, even
with several engines racing on one database; ticks missed while down run once; runs are
recorded; deploying new code starts, stops and reschedules crons; actions run at most once,
and a claim whose process died is recorded and passed."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend import Crons
from backend.crons import jobs
from backend.crons.ticker import INTERRUPTED, LEASE, CronTicker
from backend.runtime import FakeClock, to_ms
from backend.testing import TestBackend
from backend.udf.app import App, load_app
from tests.apps.ticks.functions import ticks

START = datetime(2026, 1, 1, tzinfo=UTC)
T0 = to_ms(START)
MINUTE = 60_000.0


@functools.cache
def ticks_app() -> App:
    return load_app("tests.apps.ticks.schema", "tests.apps.ticks.functions")


def with_crons(declare: Callable[[Crons], None]) -> App:
    """The ticks app with other crons than its own."""
    crons = Crons()
    declare(crons)
    base = ticks_app()
    return dataclasses.replace(base, extensions={**base.extensions, "crons": crons})


def every_minute(crons: Crons) -> None:
    crons.interval("every minute", ticks.record, {"cron": "every minute"}, minutes=1)


@pytest.fixture(autouse=True)
def _reset_actions() -> None:
    ticks.acted.clear()
    ticks.gate = None


async def rows(t: TestBackend, cron: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await t.query("ticks:list", {"cron": cron})
    return found


async def logged(t: TestBackend, name: str) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: jobs.runs(ctx.db, name))


async def stored(t: TestBackend) -> dict[str, dict[str, Any]]:
    return await t.run(lambda ctx: jobs.stored_crons(ctx.db))


async def test_an_interval_cron_runs_once_per_tick_as_the_fake_clock_moves(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=with_crons(every_minute), clock=FakeClock(START)) as t:
        assert await t.run_crons() == 1  # an interval's first tick is its deploy
        assert await t.run_crons() == 0
        t.clock.advance(seconds=59)
        assert await t.run_crons() == 0
        t.clock.advance(seconds=1)
        assert await t.run_crons() == 1
        assert await t.run_crons() == 0
        made = await rows(t)
        assert [r["at"] for r in made] == [T0, T0 + MINUTE]
        assert {r["who"] for r in made} == {None}  # a cron runs as nobody, as in Convex
        runs = await logged(t, "every minute")
        assert [(r["scheduledTime"], r["state"]) for r in runs] == [
            (T0, "success"),
            (T0 + MINUTE, "success"),
        ]
        assert runs[0]["function"] == "ticks:record"
        assert runs[0]["args"] == {"cron": "every minute"}
        (cron,) = (await stored(t)).values()
        assert (cron["nextRun"], cron["prevRun"], cron["state"]) == (
            T0 + 2 * MINUTE,
            T0 + MINUTE,
            "pending",
        )


async def test_ticks_missed_while_no_server_ran_run_once_on_start_then_on_schedule(
    database_url: str | None,
) -> None:
    app = with_crons(every_minute)
    async with TestBackend(database_url, app=app, clock=FakeClock(START)) as t:
        assert await t.run_crons() == 1
        t.clock.advance(minutes=10, seconds=30)  # nobody ran anything for ten minutes and a half
        async with t.reopen() as restarted:  # a server starting on the same database
            assert await restarted.run_crons() == 1
            assert await restarted.run_crons() == 0
            runs = await logged(restarted, "every minute")
            assert [(r["scheduledTime"], r["state"], r.get("skipped")) for r in runs] == [
                (T0, "success", None),
                (T0 + MINUTE, "success", None),  # the overdue tick, once
                (T0 + 2 * MINUTE, "skipped", 9),  # T0+2m ... T0+10m, recorded once
            ]
            assert len(await rows(restarted)) == 2
            t.clock.advance(seconds=29)
            assert await restarted.run_crons() == 0
            t.clock.advance(seconds=1)
            assert await restarted.run_crons() == 1  # back on schedule: T0+11m


async def test_several_engines_racing_on_one_database_run_each_tick_exactly_once(
    database_url: str | None,
) -> None:
    def declare(crons: Crons) -> None:
        every_minute(crons)
        crons.interval("action", ticks.act, {"cron": "action"}, minutes=1)

    async with (
        TestBackend(database_url, app=with_crons(declare), clock=FakeClock(START)) as t,
        t.reopen() as second,
        t.reopen() as third,
    ):
        ran = 0
        for _ in range(4):
            results = await asyncio.gather(
                *(b.crons.run_due() for b in (t, second, third, t, second, third))
            )
            ran += sum(results)
            t.clock.advance(minutes=1)
        assert ran == 8
        assert [r["at"] for r in await rows(t, "every minute")] == [
            T0 + i * MINUTE for i in range(4)
        ]
        assert ticks.acted == ["action"] * 4
        for name in ("every minute", "action"):
            ticked = [r["scheduledTime"] for r in await logged(t, name)]
            assert ticked == [T0 + i * MINUTE for i in range(4)]


async def test_a_failing_cron_is_recorded_rolled_back_and_kept_on_schedule(
    database_url: str | None,
) -> None:
    app = with_crons(lambda c: c.interval("broken", ticks.fail, {"cron": "broken"}, minutes=5))
    async with TestBackend(database_url, app=app, clock=FakeClock(START)) as t:
        assert await t.run_crons() == 1
        t.clock.advance(minutes=5)
        assert await t.run_crons() == 1
        assert await rows(t) == []  # the failed mutation's writes were rolled back
        runs = await logged(t, "broken")
        assert [(r["state"], r["error"]) for r in runs] == [
            ("failed", "BROKEN: this cron always fails")
        ] * 2
        (cron,) = (await stored(t)).values()
        assert cron["nextRun"] == T0 + 10 * MINUTE


async def test_an_action_cron_runs_and_is_recorded(database_url: str | None) -> None:
    app = with_crons(lambda c: c.hourly("hourly", {"minuteUTC": 15}, ticks.act, {"cron": "a"}))
    async with TestBackend(database_url, app=app, clock=FakeClock(START)) as t:
        assert await t.run_crons() == 0  # a clock schedule waits for its first match
        t.clock.advance(minutes=15)
        assert await t.run_crons() == 1
        assert ticks.acted == ["a"]
        (run,) = await logged(t, "hourly")
        assert (run["scheduledTime"], run["state"]) == (T0 + 15 * MINUTE, "success")
        assert [r["cron"] for r in await rows(t)] == ["a"]


async def test_an_action_whose_server_stopped_is_recorded_and_its_cron_goes_on(
    database_url: str | None,
) -> None:
    app = with_crons(lambda c: c.interval("slow", ticks.act, {"cron": "slow"}, minutes=1))
    async with (
        TestBackend(database_url, app=app, clock=FakeClock(START)) as t,
        t.reopen() as other,
    ):
        ticks.gate = asyncio.Event()
        stuck = asyncio.create_task(t.crons.run_due())  # claims the tick, then hangs
        for _ in range(500):
            (cron,) = (await stored(t)).values()
            if cron["state"] == "inProgress":
                break
            await asyncio.sleep(0.01)
        assert cron["state"] == "inProgress"
        assert await other.crons.run_due() == 0  # claimed and in its lease: nobody touches it
        assert (await stored(t))["slow"]["state"] == "inProgress"

        t.clock.advance(LEASE + timedelta(seconds=1))  # its process never renewed the claim
        await other.crons.run_due()
        run, skipped = await logged(t, "slow")
        assert (run["scheduledTime"], run["state"], run["error"]) == (T0, "failed", INTERRUPTED)
        assert (skipped["state"], skipped["skipped"]) == ("skipped", 5)  # T0+1m ... T0+5m
        (cron,) = (await stored(t)).values()
        assert cron["state"] == "pending"
        assert cron["nextRun"] == T0 + 6 * MINUTE

        ticks.gate.set()  # the "dead" process's action ends after all: it records nothing
        assert await stuck == 0
        assert ticks.acted == ["slow"]
        assert len(await logged(t, "slow")) == 2  # nothing more was recorded
        t.clock.advance(minutes=1)
        assert await other.crons.run_due() == 1
        assert ticks.acted == ["slow", "slow"]


async def test_deploying_new_code_starts_stops_and_reschedules_crons(
    database_url: str | None,
) -> None:
    def v1(crons: Crons) -> None:
        crons.interval("changes schedule", ticks.record, {"cron": "a"}, minutes=1)
        crons.daily("removed", ticks.record, {"cron": "b"}, hour_utc=0, minute_utc=1)
        crons.interval("changes args", ticks.record, {"cron": "c"}, minutes=1)

    def v2(crons: Crons) -> None:
        crons.interval("changes schedule", ticks.record, {"cron": "a"}, minutes=5)
        crons.interval("changes args", ticks.record, {"cron": "c2"}, minutes=1)
        crons.hourly("added", ticks.record, {"cron": "d"}, minute_utc=30)

    async with TestBackend(database_url, app=with_crons(v1), clock=FakeClock(START)) as t:
        assert await t.run_crons() == 2  # both intervals' deploy ticks
        t.clock.advance(minutes=1)
        assert await t.run_crons() == 3  # the intervals again, and the daily at 00:01
        async with t.reopen(app=with_crons(v2)) as t2:
            diff = await t2.crons.sync()
            assert not diff  # reopening deployed v2 already
            crons = await stored(t2)
            assert sorted(crons) == ["added", "changes args", "changes schedule"]
            assert await logged(t2, "removed") == []  # a removed cron's log goes with it
            assert crons["changes schedule"]["schedule"] == {"type": "interval", "seconds": 300}
            assert crons["changes schedule"]["nextRun"] == T0 + MINUTE  # starts over, now
            assert crons["changes args"]["nextRun"] == T0 + 2 * MINUTE  # keeps its cadence
            assert crons["added"]["nextRun"] == T0 + 30 * MINUTE
            assert await t2.run_crons() == 1
            t.clock.advance(minutes=1)
            assert await t2.run_crons() == 1
            assert [r["cron"] for r in await rows(t2)][-2:] == ["a", "c2"]
            t.clock.set(datetime(2026, 1, 2, 0, 1, tzinfo=UTC))
            await t2.run_crons()
            assert "b" not in [r["cron"] for r in await rows(t2) if r["at"] > T0 + MINUTE]


async def test_a_cron_that_does_not_fit_its_function_fails_the_start() -> None:
    bad_args = with_crons(lambda c: c.interval("bad", ticks.record, {"cron": 5}, minutes=1))
    with pytest.raises(TypeError, match="cron 'bad'"):
        async with TestBackend(app=bad_args):
            pass
    missing = with_crons(lambda c: c.interval("gone", "ticks:nothing", {}, minutes=1))
    with pytest.raises(TypeError, match=r"cron 'gone'.*Could not find"):
        async with TestBackend(app=missing):
            pass


async def test_a_daily_cron_runs_at_its_utc_time_each_day(database_url: str | None) -> None:
    app = with_crons(
        lambda c: c.daily("daily", {"hourUTC": 17, "minuteUTC": 30}, ticks.record, {"cron": "d"})
    )
    async with TestBackend(database_url, app=app, clock=FakeClock(START)) as t:
        t.clock.set(datetime(2026, 1, 1, 17, 29, tzinfo=UTC))
        assert await t.run_scheduled() == 0
        t.clock.advance(minutes=1)
        assert await t.run_scheduled() == 1
        t.clock.advance(days=1)
        assert await t.run_scheduled() == 1
        assert [r["at"] for r in await rows(t)] == [
            to_ms(datetime(2026, 1, 1, 17, 30, tzinfo=UTC)),
            to_ms(datetime(2026, 1, 2, 17, 30, tzinfo=UTC)),
        ]


async def test_the_log_keeps_only_the_newest_runs_of_each_cron(
    database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "KEEP_RUNS", 3)
    async with TestBackend(database_url, app=with_crons(every_minute), clock=FakeClock(START)) as t:
        for _ in range(6):
            await t.run_crons()
            t.clock.advance(minutes=1)
        assert [r["scheduledTime"] for r in await logged(t, "every minute")] == [
            T0 + i * MINUTE for i in (3, 4, 5)
        ]
        assert len(await rows(t)) == 6


async def test_a_running_action_keeps_its_claim_by_renewing_the_lease(
    database_url: str | None,
) -> None:
    app = with_crons(lambda c: c.interval("long", ticks.act, {"cron": "long"}, minutes=1))
    async with (
        TestBackend(database_url, app=app, clock=FakeClock(START)) as t,
        t.reopen() as other,
    ):
        ticker = CronTicker(t.engine, lease=timedelta(seconds=0.3))  # renewed every 0.1 s
        ticks.gate = asyncio.Event()
        running = asyncio.create_task(ticker.run_due())
        for _ in range(500):
            cron = (await stored(t))["long"]
            if cron["state"] == "inProgress":
                break
            await asyncio.sleep(0.01)
        t.clock.advance(seconds=10)  # far past the lease it took
        for _ in range(500):
            cron = (await stored(t))["long"]
            if cron["leaseUntil"] > to_ms(t.clock.now()):
                break  # renewed by the process still running the action
            await asyncio.sleep(0.01)
        assert await other.crons.run_due() == 0
        assert (await stored(t))["long"]["claim"] == cron["claim"]
        ticks.gate.set()
        assert await running == 1
        (run,) = await logged(t, "long")
        assert run["state"] == "success"
