"""Time and randomness, passed in rather than reached for.

Nothing deep in the engine calls ``time.time()`` or ``secrets``: it asks the ``Runtime`` it was
given. Production uses the system clock and the OS's CSPRNG; tests use ``FakeClock`` so that
sessions age, grants and codes expire, and backoffs elapse, by ``clock.advance(minutes=30)``
instead of by sleeping.
"""

from __future__ import annotations

import secrets
import time
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


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**units)`` (e.g. ``minutes=30``)."""
        step = delta if delta is not None else timedelta(**units)
        if step < timedelta(0):
            raise ValueError("a clock does not go backwards")
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when


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
    """What the engine needs from the world: a clock and a source of randomness."""

    clock: Clock = field(default_factory=SystemClock)
    random: RandomSource = field(default_factory=SystemRandom)

    def now(self) -> datetime:
        return self.clock.now()

    def now_ms(self) -> float:
        return to_ms(self.clock.now())

    def monotonic(self) -> float:
        return time.monotonic()


def to_ms(when: datetime) -> float:
    """Milliseconds since the epoch, as Convex's ``_creationTime`` and ``Date.now()`` count."""
    return when.timestamp() * 1000.0


def from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def to_ns(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
