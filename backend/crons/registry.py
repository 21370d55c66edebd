"""``Crons``: the app's recurring jobs, declared in ``functions/crons.py``.

```python
from backend import Crons
from functions import messages, payments

crons = Crons()
crons.interval("clear messages table", messages.clear_all, minutes=1)
crons.daily("send reminder", payments.remind, {"email": "me@example.com"}, hour_utc=16)
crons.cron("payment reminder duplicate", "0 16 1 * *", payments.remind, {"email": "..."})
```

Each method also takes Convex's own argument order, a schedule object before the function,
so a ``crons.ts`` reads the same in Python:

```python
crons.interval("clear messages table", {"minutes": 1}, messages.clear_all)
crons.monthly("payment reminder", {"day": 1, "hourUTC": 16, "minuteUTC": 0}, payments.remind, {...})
```

Declaring only records the jobs; the engine deploys them when a server starts (and the
harness when it opens): a cron added to the code starts, one removed stops, one whose
schedule changed runs on the new one (``backend/crons/jobs.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, overload

from backend.crons import schedule as schedules
from backend.crons.schedule import Schedule, ScheduleError
from backend.udf.registry import FunctionKind, RegisteredFunction

FunctionRef = RegisteredFunction[Any, Any, Any] | str
Args = Mapping[str, Any]


@dataclass(frozen=True)
class CronJob:
    """One declared cron job: its name, the mutation or action it runs, with what arguments,
    on what schedule."""

    name: str
    function: FunctionRef
    args: dict[str, Any] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=dict)

    @property
    def function_path(self) -> str | None:
        """The function's ``module:name`` once the app is loaded (or the path given)."""
        return self.function if isinstance(self.function, str) else self.function.path


def _split(
    first: Args | FunctionRef, second: FunctionRef | Args | None, third: Args | None
) -> tuple[Args | None, FunctionRef, Args | None]:
    """Convex's order (schedule, function, args) or the Pythonic one (function, args)."""
    if isinstance(first, Mapping):
        if not isinstance(second, RegisteredFunction | str):
            raise TypeError("after a schedule object comes the function to run")
        return first, second, third
    if third is not None:
        raise TypeError("pass the arguments once: (function, args) or (schedule, function, args)")
    if second is not None and not isinstance(second, Mapping):
        raise TypeError(f"the function's arguments must be an object, not {second!r}")
    return None, first, second


def _fields(schedule: Args, allowed: set[str]) -> dict[str, Any]:
    unknown = set(schedule) - allowed
    if unknown:
        raise ScheduleError(
            f"unknown schedule fields {sorted(unknown)}; expected {sorted(allowed)}"
        )
    return dict(schedule)


class Crons:
    """The app's cron jobs. Export one instance, ``crons = Crons()``, from any module of the
    app's functions package (by convention ``functions/crons.py``).

    Every method takes a unique ``name``, the mutation or action to run (the function itself,
    internal or public, or its ``"module:name"`` path) and its arguments. Times are UTC; a
    clock schedule without a minute runs at a minute drawn from its name, so that crons spread
    over the hour. Misdeclarations raise ``TypeError`` when the module is imported; arguments
    that do not fit the function fail the server's start.
    """

    __app_extension__: ClassVar[str] = "crons"

    def __init__(self) -> None:
        self.jobs: dict[str, CronJob] = {}

    def _add(self, name: str, schedule: Schedule, function: FunctionRef, args: Args | None) -> None:
        if not isinstance(name, str) or not name or len(name) > 256:
            raise TypeError("a cron's name is a non-empty string of at most 256 characters")
        if any(not (" " <= ch <= "~") for ch in name):
            raise TypeError(f"invalid cron name {name!r}: use printable ASCII characters")
        if name in self.jobs:
            raise TypeError(f"cron {name!r} is declared twice")
        if isinstance(function, RegisteredFunction):
            if function.kind is FunctionKind.QUERY:
                raise TypeError(f"cron {name!r}: a cron runs a mutation or an action, not a query")
        elif not isinstance(function, str):
            raise TypeError(f"cron {name!r}: expected a mutation or an action, not {function!r}")
        if args is not None and not isinstance(args, Mapping):
            raise TypeError(f"cron {name!r}: the function's arguments must be an object")
        self.jobs[name] = CronJob(name, function, dict(args or {}), schedule)

    # ---- interval -----------------------------------------------------------------------

    @overload
    def interval(
        self, name: str, schedule: Args, function: FunctionRef, args: Args | None = None, /
    ) -> None: ...

    @overload
    def interval(
        self,
        name: str,
        function: FunctionRef,
        args: Args | None = None,
        /,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
    ) -> None: ...

    def interval(
        self,
        name: str,
        first: Args | FunctionRef,
        second: FunctionRef | Args | None = None,
        third: Args | None = None,
        /,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
    ) -> None:
        """Run every ``seconds``, ``minutes`` or ``hours`` (exactly one, a whole number),
        starting when the cron is first deployed: ``crons.interval(name, fn, args, minutes=1)``
        or Convex's ``crons.interval(name, {"minutes": 1}, fn, args)``."""
        given, function, args = _split(first, second, third)
        if given is not None:
            if seconds or minutes or hours:
                raise TypeError("give the interval once: as an object or as keywords")
            spec = _fields(given, {"seconds", "minutes", "hours"})
            seconds, minutes, hours = (spec.get(k, 0) for k in ("seconds", "minutes", "hours"))
        self._add(
            name, schedules.interval(seconds=seconds, minutes=minutes, hours=hours), function, args
        )

    # ---- cron expressions ---------------------------------------------------------------

    def cron(
        self, name: str, expression: str, function: FunctionRef, args: Args | None = None
    ) -> None:
        """Run at every match of a five-field cron expression, in UTC
        (``crons.cron(name, "0 16 1 * *", fn, args)``: the first of each month at 16:00)."""
        self._add(name, schedules.cron(expression), function, args)

    # ---- clock schedules ----------------------------------------------------------------

    @overload
    def hourly(
        self, name: str, schedule: Args, function: FunctionRef, args: Args | None = None, /
    ) -> None: ...

    @overload
    def hourly(
        self,
        name: str,
        function: FunctionRef,
        args: Args | None = None,
        /,
        *,
        minute_utc: int | None = None,
    ) -> None: ...

    def hourly(
        self,
        name: str,
        first: Args | FunctionRef,
        second: FunctionRef | Args | None = None,
        third: Args | None = None,
        /,
        *,
        minute_utc: int | None = None,
    ) -> None:
        """Run every hour at ``minute_utc`` (Convex: ``{"minuteUTC": 30}``)."""
        given, function, args = _split(first, second, third)
        if given is not None:
            minute_utc = _fields(given, {"minuteUTC"}).get("minuteUTC")
        self._add(name, schedules.hourly(name, minute_utc), function, args)

    @overload
    def daily(
        self, name: str, schedule: Args, function: FunctionRef, args: Args | None = None, /
    ) -> None: ...

    @overload
    def daily(
        self,
        name: str,
        function: FunctionRef,
        args: Args | None = None,
        /,
        *,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> None: ...

    def daily(
        self,
        name: str,
        first: Args | FunctionRef,
        second: FunctionRef | Args | None = None,
        third: Args | None = None,
        /,
        *,
        hour_utc: int | None = None,
        minute_utc: int | None = None,
    ) -> None:
        """Run every day at ``hour_utc:minute_utc`` (Convex: ``{"hourUTC": 17,
        "minuteUTC": 30}``)."""
        given, function, args = _split(first, second, third)
        if given is not None:
            spec = _fields(given, {"hourUTC", "minuteUTC"})
            hour_utc, minute_utc = spec.get("hourUTC"), spec.get("minuteUTC")
        if hour_utc is None:
            raise ScheduleError(f"cron {name!r}: a daily schedule needs its hour (hourUTC)")
        self._add(name, schedules.daily(name, hour_utc, minute_utc), function, args)

    @overload
    def weekly(
        self, name: str, schedule: Args, function: FunctionRef, args: Args | None = None, /
    ) -> None: ...

    @overload
    def weekly(
        self,
        name: str,
        function: FunctionRef,
        args: Args | None = None,
        /,
        *,
        day_of_week: str,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> None: ...

    def weekly(
        self,
        name: str,
        first: Args | FunctionRef,
        second: FunctionRef | Args | None = None,
        third: Args | None = None,
        /,
        *,
        day_of_week: str | None = None,
        hour_utc: int | None = None,
        minute_utc: int | None = None,
    ) -> None:
        """Run every week on ``day_of_week`` (``"monday"``, ...) at ``hour_utc:minute_utc``
        (Convex: ``{"dayOfWeek": "monday", "hourUTC": 17, "minuteUTC": 0}``)."""
        given, function, args = _split(first, second, third)
        if given is not None:
            spec = _fields(given, {"dayOfWeek", "hourUTC", "minuteUTC"})
            day_of_week = spec.get("dayOfWeek")
            hour_utc, minute_utc = spec.get("hourUTC"), spec.get("minuteUTC")
        if day_of_week is None or hour_utc is None:
            raise ScheduleError(f"cron {name!r}: a weekly schedule needs dayOfWeek and hourUTC")
        self._add(name, schedules.weekly(name, day_of_week, hour_utc, minute_utc), function, args)

    @overload
    def monthly(
        self, name: str, schedule: Args, function: FunctionRef, args: Args | None = None, /
    ) -> None: ...

    @overload
    def monthly(
        self,
        name: str,
        function: FunctionRef,
        args: Args | None = None,
        /,
        *,
        day: int,
        hour_utc: int,
        minute_utc: int | None = None,
    ) -> None: ...

    def monthly(
        self,
        name: str,
        first: Args | FunctionRef,
        second: FunctionRef | Args | None = None,
        third: Args | None = None,
        /,
        *,
        day: int | None = None,
        hour_utc: int | None = None,
        minute_utc: int | None = None,
    ) -> None:
        """Run every month on ``day`` (1-31; a month without that day is passed over) at
        ``hour_utc:minute_utc`` (Convex: ``{"day": 1, "hourUTC": 16, "minuteUTC": 0}``)."""
        given, function, args = _split(first, second, third)
        if given is not None:
            spec = _fields(given, {"day", "hourUTC", "minuteUTC"})
            day, hour_utc, minute_utc = spec.get("day"), spec.get("hourUTC"), spec.get("minuteUTC")
        if day is None or hour_utc is None:
            raise ScheduleError(f"cron {name!r}: a monthly schedule needs day and hourUTC")
        self._add(name, schedules.monthly(name, day, hour_utc, minute_utc), function, args)


def cron_jobs() -> Crons:
    """Convex's ``cronJobs()``: a new, empty ``Crons``."""
    return Crons()


__all__ = ["CronJob", "Crons", "cron_jobs"]
