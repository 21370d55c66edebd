"""Whether the database can be reached, as the store's own calls find it.

During an outage every call fails, and each would log its own traceback: hundreds a second
on a busy server, burying the one line that matters. ``StoreHealth`` keeps the state instead:
the first failure logs the outage once, with its cause; the first success after it logs the
recovery once, with how long it lasted. Calls in between fail fast and log nothing (they
answer their callers ``UNAVAILABLE``), and ``/api/health`` reports the state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger("backend.storage")


class StoreState(Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class HealthReport:
    state: StoreState
    cause: str | None = None  # for the server's own log and health report, never for callers
    down_for: float | None = None  # seconds, while down


class StoreHealth:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._down_since: float | None = None
        self._cause: str | None = None

    @property
    def up(self) -> bool:
        return self._down_since is None

    def failed(self, cause: str) -> None:
        """A call could not reach the database (logged only if it was up until now)."""
        if self._down_since is None:
            self._down_since = self._clock()
            self._cause = cause
            log.error("database unavailable: %s", cause)

    def succeeded(self) -> None:
        """A call reached the database and finished (logged only if it was down)."""
        if self._down_since is not None:
            lasted = self._clock() - self._down_since
            self._down_since = None
            log.warning("database available again after %.1f s (it was: %s)", lasted, self._cause)
            self._cause = None

    def report(self) -> HealthReport:
        if self._down_since is None:
            return HealthReport(StoreState.UP)
        return HealthReport(StoreState.DOWN, self._cause, self._clock() - self._down_since)
