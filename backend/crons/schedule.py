"""When a cron job runs: its schedule as data, and the pure arithmetic of its runs.

A schedule is stored as Convex describes it, a small object with a ``type``:

| schedule | runs |
|---|---|
| ``{type: "interval", seconds}`` | every ``seconds``, the first run when the cron is deployed |
| ``{type: "cron", cron}`` | at each match of a five-field cron expression, in UTC |
| ``{type: "hourly", minuteUTC}`` | at that minute of every hour |
| ``{type: "daily", hourUTC, minuteUTC}`` | every day at that time (UTC) |
| ``{type: "weekly", dayOfWeek, hourUTC, minuteUTC}`` | every week on ``"monday"``, ... |
| ``{type: "monthly", day, hourUTC, minuteUTC}`` | on that day of every month that has it |

A clock schedule is a cron expression underneath (``croniter`` matches it). Each run is a
*tick*: the time it was due. After the run of tick T completes at ``now``, the next tick is the
first one after ``now``: ticks that fell due while the job ran, or while no server was up, are
*skipped* (counted, and recorded once), never run late one after another. So a cron whose
servers were down for a day runs once when they come back, then on schedule.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from croniter import croniter

from backend.runtime import from_ms, to_ms

Schedule = dict[str, Any]
DAYS_OF_WEEK: Final = (
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
)
# Counting the ticks a long outage skipped stops here (the count is for the record only).
MAX_SKIPPED_COUNTED: Final = 10_000


class ScheduleError(TypeError):
    """A schedule that cannot be: a bad interval, hour, minute, day or cron expression."""


def _whole(value: Any, low: int, high: int | None, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ScheduleError(f"{what} must be a whole number, not {value!r}")
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ScheduleError(f"{what} must be {bound}, not {number}")
    return number


def spread_minute(name: str) -> int:
    """The minute of the hour a clock schedule without one runs at: drawn from the cron's name,
    so that crons spread over the hour (as Convex spreads them) and every server agrees."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 60


def interval(*, seconds: float = 0, minutes: float = 0, hours: float = 0) -> Schedule:
    """``{type: "interval", seconds}`` from exactly one of ``seconds``, ``minutes``, ``hours``."""
    given = [(v, n) for v, n in ((seconds, 1), (minutes, 60), (hours, 3600)) if v]
    if len(given) != 1:
        raise ScheduleError("an interval takes exactly one of seconds, minutes or hours")
    value, unit = given[0]
    return {"type": "interval", "seconds": _whole(value, 1, None, "an interval") * unit}


def cron(expression: str) -> Schedule:
    """``{type: "cron", cron}``: five fields (minute, hour, day of month, month, day of week),
    matched in UTC."""
    if not isinstance(expression, str) or len(expression.split()) != 5:
        raise ScheduleError(
            f"a cron expression has five fields (minute hour day month weekday): {expression!r}"
        )
    if not croniter.is_valid(expression):
        raise ScheduleError(f"not a valid cron expression: {expression!r}")
    return {"type": "cron", "cron": " ".join(expression.split())}


def hourly(name: str, minute_utc: int | None = None) -> Schedule:
    minute = spread_minute(name) if minute_utc is None else minute_utc
    return {"type": "hourly", "minuteUTC": _whole(minute, 0, 59, "minuteUTC")}


def daily(name: str, hour_utc: int, minute_utc: int | None = None) -> Schedule:
    minute = spread_minute(name) if minute_utc is None else minute_utc
    return {
        "type": "daily",
        "hourUTC": _whole(hour_utc, 0, 23, "hourUTC"),
        "minuteUTC": _whole(minute, 0, 59, "minuteUTC"),
    }


def weekly(name: str, day_of_week: str, hour_utc: int, minute_utc: int | None = None) -> Schedule:
    if day_of_week not in DAYS_OF_WEEK:
        raise ScheduleError(f'dayOfWeek must be a day like "monday", not {day_of_week!r}')
    return {"type": "weekly", "dayOfWeek": day_of_week, **_clock(name, hour_utc, minute_utc)}


def monthly(name: str, day: int, hour_utc: int, minute_utc: int | None = None) -> Schedule:
    return {
        "type": "monthly",
        "day": _whole(day, 1, 31, "day"),
        **_clock(name, hour_utc, minute_utc),
    }


def _clock(name: str, hour_utc: int, minute_utc: int | None) -> dict[str, int]:
    minute = spread_minute(name) if minute_utc is None else minute_utc
    return {
        "hourUTC": _whole(hour_utc, 0, 23, "hourUTC"),
        "minuteUTC": _whole(minute, 0, 59, "minuteUTC"),
    }


def expression_of(schedule: Mapping[str, Any]) -> str | None:
    """The cron expression behind a clock schedule; None for an interval."""
    kind = schedule.get("type")
    if kind == "interval":
        return None
    if kind == "cron":
        return str(schedule["cron"])
    minute = schedule["minuteUTC"]
    if kind == "hourly":
        return f"{minute} * * * *"
    hour = schedule["hourUTC"]
    if kind == "daily":
        return f"{minute} {hour} * * *"
    if kind == "weekly":
        return f"{minute} {hour} * * {DAYS_OF_WEEK.index(schedule['dayOfWeek'])}"
    if kind == "monthly":
        return f"{minute} {hour} {schedule['day']} * *"
    raise ScheduleError(f"unknown schedule type {kind!r}")


def _after(expression: str, when_ms: float) -> float:
    """The first match of ``expression`` strictly after ``when_ms``."""
    start = from_ms(when_ms)
    found: datetime = croniter(expression, start).get_next(datetime)
    return to_ms(found.astimezone(UTC))


def first_run(schedule: Mapping[str, Any], now_ms: float) -> float:
    """When a newly deployed (or rescheduled) cron first runs: at once for an interval (as in
    Convex), at the next match after ``now`` for a clock schedule."""
    expression = expression_of(schedule)
    return now_ms if expression is None else _after(expression, now_ms)


def next_run(schedule: Mapping[str, Any], tick_ms: float, now_ms: float) -> tuple[float, int]:
    """After the run of ``tick_ms`` completes at ``now_ms``: the next tick, strictly after
    ``now_ms``, and how many ticks in between are skipped."""
    expression = expression_of(schedule)
    if expression is None:
        period = float(schedule["seconds"]) * 1000.0
        steps = max(1, math.floor((now_ms - tick_ms) / period) + 1)
        return tick_ms + steps * period, steps - 1
    following = _after(expression, max(now_ms, tick_ms))
    skipped = 0
    cursor = tick_ms
    while skipped < MAX_SKIPPED_COUNTED:
        cursor = _after(expression, cursor)
        if cursor >= following:
            break
        skipped += 1
    return following, skipped


def describe(schedule: Mapping[str, Any]) -> str:
    """The schedule in words, for logs and listings."""
    expression = expression_of(schedule)
    if expression is None:
        return f"every {schedule['seconds']}s"
    return f"{schedule['type']} ({expression} UTC)"
