"""When a cron runs: schedules as data, their next ticks and skipped ticks, and declarations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend import Crons, cron_jobs
from backend.crons import schedule
from backend.crons.schedule import ScheduleError
from backend.runtime import from_ms, to_ms
from tests.apps.cron_jobs.functions import messages

T0 = to_ms(datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC))  # a Monday
MINUTE = 60_000.0


def at(ms: float) -> datetime:
    return from_ms(ms)


def test_an_interval_runs_first_at_deploy_then_every_period() -> None:
    every = schedule.interval(minutes=1)
    assert every == {"type": "interval", "seconds": 60}
    assert schedule.first_run(every, T0) == T0
    assert schedule.next_run(every, T0, T0) == (T0 + MINUTE, 0)
    # a run that finishes late within its period keeps the cadence
    assert schedule.next_run(every, T0, T0 + 59_000) == (T0 + MINUTE, 0)


def test_ticks_missed_while_down_are_skipped_not_run_one_after_another() -> None:
    every = schedule.interval(seconds=60)
    # down for ten minutes and a half after the tick at T0: the next tick is the first after
    # now, and the nine (and the one due exactly now) in between are skipped
    following, skipped = schedule.next_run(every, T0, T0 + 10.5 * MINUTE)
    assert following == T0 + 11 * MINUTE
    assert skipped == 10
    following, skipped = schedule.next_run(every, T0, T0 + MINUTE)
    assert (following, skipped) == (T0 + 2 * MINUTE, 1)


def test_a_clock_schedule_runs_at_its_next_match_strictly_after_now() -> None:
    hourly = schedule.cron("0 * * * *")
    first = schedule.first_run(hourly, T0)
    assert at(first) == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert schedule.next_run(hourly, first, first) == (first + 60 * MINUTE, 0)
    # at a match exactly, that match is not "after now"
    assert schedule.first_run(hourly, first) == first + 60 * MINUTE
    # three hours late: one run, then the next match after now; two were skipped
    following, skipped = schedule.next_run(hourly, first, first + 3 * 60 * MINUTE + 1)
    assert at(following) == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert skipped == 3


def test_daily_weekly_and_monthly_are_cron_expressions_in_utc() -> None:
    daily = schedule.daily("d", 17, 30)
    assert schedule.expression_of(daily) == "30 17 * * *"
    assert at(schedule.first_run(daily, T0)) == datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
    weekly = schedule.weekly("w", "sunday", 9, 0)
    assert at(schedule.first_run(weekly, T0)) == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
    monthly = schedule.monthly("m", 1, 16, 0)
    assert at(schedule.first_run(monthly, T0)) == datetime(2026, 4, 1, 16, 0, tzinfo=UTC)
    # a day that some months lack: those months are passed over
    the_31st = schedule.monthly("m", 31, 0, 0)
    assert at(schedule.first_run(the_31st, T0)) == datetime(2026, 3, 31, 0, 0, tzinfo=UTC)
    april_first = to_ms(datetime(2026, 4, 1, tzinfo=UTC))
    assert at(schedule.first_run(the_31st, april_first)) == datetime(2026, 5, 31, tzinfo=UTC)


def test_a_clock_schedule_without_a_minute_takes_one_from_its_name() -> None:
    first, again = schedule.hourly("send digest"), schedule.hourly("send digest")
    assert first == again  # every server computes the same minute
    assert first["minuteUTC"] == schedule.spread_minute("send digest")
    minutes = {schedule.spread_minute(f"cron {i}") for i in range(200)}
    assert len(minutes) > 40  # spread over the hour, not all at :00


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: schedule.interval(), "exactly one"),
        (lambda: schedule.interval(seconds=1, minutes=1), "exactly one"),
        (lambda: schedule.interval(seconds=1.5), "whole number"),
        (lambda: schedule.interval(seconds=-5), "at least 1"),
        (lambda: schedule.daily("d", 24), "hourUTC"),
        (lambda: schedule.daily("d", 3, 60), "minuteUTC"),
        (lambda: schedule.weekly("w", "funday", 3), "dayOfWeek"),
        (lambda: schedule.monthly("m", 0, 3), "day"),
        (lambda: schedule.cron("61 * * * *"), "not a valid"),
        (lambda: schedule.cron("* * * * * *"), "five fields"),
        (lambda: schedule.cron("@hourly"), "five fields"),
    ],
)
def test_impossible_schedules_are_refused_when_declared(make: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        make()  # type: ignore[operator]


@given(
    period=st.integers(min_value=1, max_value=86_400),
    late=st.floats(min_value=0, max_value=1e9, allow_nan=False),
)
def test_the_next_interval_tick_is_after_now_on_the_cadence(period: int, late: float) -> None:
    every = schedule.interval(seconds=period)
    following, skipped = schedule.next_run(every, T0, T0 + late)
    assert following > T0 + late
    assert following - period * 1000 <= T0 + late
    assert following == pytest.approx(T0 + (skipped + 1) * period * 1000)


def test_crons_are_declared_in_convex_order_or_pythonically() -> None:
    crons = Crons()
    crons.interval("a", {"minutes": 1}, messages.clearAll)
    crons.interval("b", messages.clearAll, minutes=1)
    crons.daily("c", {"hourUTC": 17, "minuteUTC": 30}, messages.send, {"body": "x", "author": "y"})
    crons.daily("d", messages.send, {"body": "x", "author": "y"}, hour_utc=17, minute_utc=30)
    crons.weekly("e", {"dayOfWeek": "monday", "hourUTC": 9, "minuteUTC": 0}, "messages:clearAll")
    crons.weekly("f", messages.clearAll, day_of_week="monday", hour_utc=9, minute_utc=0)
    crons.monthly("g", {"day": 1, "hourUTC": 16, "minuteUTC": 0}, messages.clearAll)
    crons.monthly("h", messages.clearAll, day=1, hour_utc=16, minute_utc=0)
    crons.hourly("i", {"minuteUTC": 5}, messages.clearAll)
    crons.hourly("j", messages.clearAll, minute_utc=5)
    crons.cron("k", "0 16 1 * *", messages.clearAll)
    jobs = crons.jobs
    for convex, pythonic in ("ab", "cd", "ef", "gh", "ij"):
        assert jobs[convex].schedule == jobs[pythonic].schedule
        assert jobs[convex].args == jobs[pythonic].args
    assert jobs["c"].args == {"body": "x", "author": "y"}
    assert jobs["k"].schedule == {"type": "cron", "cron": "0 16 1 * *"}
    assert jobs["e"].function_path == "messages:clearAll"
    assert isinstance(cron_jobs(), Crons)


def test_misdeclared_crons_fail_at_import_with_what_was_expected() -> None:
    from tests.apps.cron_jobs.functions import messages as m

    crons = Crons()
    crons.interval("one", m.clearAll, seconds=10)
    with pytest.raises(TypeError, match="declared twice"):
        crons.interval("one", m.clearAll, seconds=10)
    with pytest.raises(TypeError, match="not a query"):
        crons.interval("q", m.list, seconds=10)
    with pytest.raises(TypeError, match="printable ASCII"):
        crons.interval("tab\there", m.clearAll, seconds=10)
    with pytest.raises(TypeError, match="once"):
        crons.interval("both", {"seconds": 1}, m.clearAll, seconds=1)  # type: ignore[call-overload]
    with pytest.raises(ScheduleError, match="unknown schedule fields"):
        crons.daily("typo", {"hourUtc": 1}, m.clearAll)
    with pytest.raises(ScheduleError, match="needs its hour"):
        crons.daily("no hour", m.clearAll)  # type: ignore[call-overload]
    assert list(crons.jobs) == ["one"]


def test_timestamps_in_a_schedule_are_utc_whatever_the_servers_zone() -> None:
    daily = schedule.daily("d", 0, 0)
    first = at(schedule.first_run(daily, T0))
    assert first.utcoffset() == timedelta(0)
    assert (first.hour, first.minute) == (0, 0)
