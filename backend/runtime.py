"""Time and randomness, passed in rather than reached for.

Nothing deep in the engine calls ``time.time()`` or ``secrets``: it asks the ``Runtime`` it was
given. Production uses the system clock and the OS's CSPRNG; tests use ``FakeClock`` so that
sessions age, grants and codes expire, and backoffs elapse, by ``clock.advance(minutes=30)``
instead of by sleeping.

Timers are the runtime's too (``Runtime.timers``): a socket's pings and token expiry, the sync
coordinator's catch-up, the server's housekeeping, the engine's backoff after a lost race, the
commit listener's reconnects, the storage sweep and a running cron's lease renewal all wait
through it. By default they run
on the event loop's monotonic time, even beside a ``FakeClock`` (a live test server's client
still needs its pings in real time); ``FakeClock.timers()`` gives timers that fire only as the
fake clock is advanced, so a test can age an open socket past its token's expiry.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """Monotonic time and waiting on it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        """Call ``callback()`` once ``delay`` seconds have passed (on the running loop)."""
        ...

    async def sleep(self, delay: float) -> None:
        """Return once ``delay`` seconds have passed."""
        ...


async def wait_for_event(timers: Timers, event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed on ``timers``; whether the event
    was set. (``asyncio.wait_for(event.wait(), seconds)`` on the loop's own clock, but on the
    injected timers, so a fake clock ends the wait.)"""
    if event.is_set():
        return True
    timed_out = asyncio.get_running_loop().create_future()

    def expire() -> None:
        if not timed_out.done():
            timed_out.set_result(None)

    handle = timers.call_later(seconds, expire)
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, timed_out}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        handle.cancel()
        waiter.cancel()
        timed_out.cancel()
    return event.is_set()


class LoopTimers:
    """The event loop's own timers and ``time.monotonic``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


class _FakeTimer:
    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback: Callable[[], object] | None = callback

    def cancel(self) -> None:
        self.callback = None


class FakeTimers:
    """Timers that fire only when their ``FakeClock`` is advanced past them, in due order;
    ``monotonic`` is the fake clock's seconds since it started."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._start = clock.now()
        self._due: list[tuple[float, int, _FakeTimer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return (self._clock.now() - self._start).total_seconds()

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        timer = _FakeTimer(callback)
        heapq.heappush(self._due, (self.monotonic() + max(0.0, delay), next(self._order), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        woken = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        handle = self.call_later(delay, wake)
        try:
            await woken
        finally:
            handle.cancel()

    def waiting(self) -> int:
        """How many timers are set and not yet fired or cancelled."""
        return sum(1 for _due, _order, timer in self._due if timer.callback is not None)

    def fire_due(self) -> int:
        """Run every timer now due; the number run. ``FakeClock`` calls it as it moves."""
        fired = 0
        while self._due and self._due[0][0] <= self.monotonic():
            _due, _order, timer = heapq.heappop(self._due)
            callback, timer.callback = timer.callback, None
            if callback is not None:
                callback()
                fired += 1
        return fired


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._timers: FakeTimers | None = None

    def timers(self) -> FakeTimers:
        """Timers driven by this clock (one set per clock): pass them as ``Runtime.timers``."""
        if self._timers is None:
            self._timers = FakeTimers(self)
        return self._timers

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**units)`` (e.g. ``minutes=30``)."""
        step = delta if delta is not None else timedelta(**units)
        if step < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += step
        if self._timers is not None:
            self._timers.fire_due()
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when
        if self._timers is not None:
            self._timers.fire_due()


class RandomSource(Protocol):
    def token_bytes(self, n: int) -> bytes: ...

    def randbelow(self, n: int) -> int: ...


class SystemRandom:
    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)


@dataclass
class Runtime:
    """What the engine needs from the world: a clock, timers and a source of randomness."""

    clock: Clock = field(default_factory=SystemClock)
    random: RandomSource = field(default_factory=SystemRandom)
    timers: Timers = field(default_factory=LoopTimers)

    def now(self) -> datetime:
        return self.clock.now()

    def now_ms(self) -> float:
        return to_ms(self.clock.now())

    def monotonic(self) -> float:
        return self.timers.monotonic()


def to_ms(when: datetime) -> float:
    """Milliseconds since the epoch, as Convex's ``_creationTime`` and ``Date.now()`` count."""
    return when.timestamp() * 1000.0


def from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def to_ns(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
