"""The most recent function calls of this process, for the dashboard's live log.

Each engine keeps a ``RecentCalls``: a bounded ring of the records ``calls.py`` writes when a
call ends (the same dict the ``backend.functions`` line is encoded from, never text parsed
back), each numbered with a ``cursor`` that only grows (1, 2, 3, ...). The ring holds at most
``max_entries`` records and ``max_bytes`` of their encoded size; the oldest go first. It is
fed whatever the logger's level is: the log file is an operator's choice, the dashboard's view
is not.

Records are this process's only: a deployment with several processes shows, in each
process's dashboard, that process's calls (``python -m backend logs`` reads the file every
process appends to). A restart starts the cursors again from 1, and a reader holding a cursor
from before it is told so (``Page.reset``).

Readers page with ``after(cursor)``, or wait for the next record with ``wait`` (a long poll):
it returns as soon as a record newer than the cursor exists, when the timeout passes on the
runtime's timers, or when the server shuts down (``stop_waiting``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from backend.runtime import Timers

MAX_ENTRIES: Final = 1000
MAX_BYTES: Final = 8 * 1024 * 1024  # 1,000 records of a few KB; fewer if they are huge


@dataclass(frozen=True)
class Page:
    """Records after a cursor, oldest first. ``cursor`` is the newest one's (the reader's next
    cursor); ``missed`` counts records the ring dropped before the reader came back; ``reset``
    says the reader's cursor is from before this process started (every record is sent)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0
    missed: int = 0
    reset: bool = False

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"entries": self.entries, "cursor": self.cursor}
        if self.missed:
            body["missed"] = self.missed
        if self.reset:
            body["reset"] = True
        return body


_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class RecentCalls:
    """A bounded ring of call records (see the module's docstring)."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a ring keeps at least one record")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.last = 0
        """The newest record's cursor (0 before the first)."""
        self._records: deque[tuple[dict[str, Any], int]] = deque()
        self._bytes = 0
        self._waiters: set[_Waiter] = set()
        self.stopped = False
        # calls end on the event loop; the lock is for a call run on another thread's loop
        self._lock = threading.Lock()
        _rings.add(self)

    def __len__(self) -> int:
        return len(self._records)

    def add(self, entry: dict[str, Any], size: int) -> int:
        """Keep ``entry`` (``size``: its encoded length) as the newest record; its cursor."""
        with self._lock:
            self.last += 1
            self._records.append(({"cursor": self.last, **entry}, size))
            self._bytes += size
            while len(self._records) > 1 and (
                len(self._records) > self.max_entries or self._bytes > self.max_bytes
            ):
                _old, old_size = self._records.popleft()
                self._bytes -= old_size
            waiters, self._waiters = self._waiters, set()
            cursor = self.last
        _wake(waiters)
        return cursor

    def after(self, cursor: int | None) -> Page:
        """The records newer than ``cursor``; every record kept for None (or a cursor from
        before a restart, ``reset``)."""
        with self._lock:
            return self._after(cursor)

    def _after(self, cursor: int | None) -> Page:
        records = self._records
        if cursor is None or cursor > self.last:
            return Page([r for r, _ in records], self.last, reset=cursor is not None)
        oldest = records[0][0]["cursor"] if records else self.last + 1
        start = max(0, cursor - oldest + 1)  # cursors are contiguous in the ring
        entries = [r for r, _ in itertools.islice(records, start, None)]
        return Page(entries, self.last, missed=max(0, oldest - cursor - 1))

    async def wait(self, cursor: int | None, seconds: float, timers: Timers) -> Page:
        """``after(cursor)``, once it has a record, or after ``seconds`` (on
        ``timers``), or at once when the ring is stopped."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        waiter = (loop, woken)
        with self._lock:
            page = self._after(cursor)
            if page.entries or page.reset or cursor is None or seconds <= 0 or self.stopped:
                return page
            self._waiters.add(waiter)
        handle = timers.call_later(seconds, lambda: _settle(woken))
        try:
            await woken
        finally:
            handle.cancel()
            with self._lock:
                self._waiters.discard(waiter)
        return self.after(cursor)

    def stop(self) -> None:
        """End every wait now, and answer every later one at once (the server is stopping)."""
        with self._lock:
            self.stopped = True
            waiters, self._waiters = self._waiters, set()
        _wake(waiters)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake(waiters: set[_Waiter]) -> None:
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, future in waiters:
        if loop is running:
            _settle(future)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(_settle, future)


_rings: weakref.WeakSet[RecentCalls] = weakref.WeakSet()


def stop_waiting() -> None:
    """Stop every ring of this process: its long polls answer now. A server calls it as it
    shuts down, since it waits for open requests before it stops."""
    for ring in list(_rings):
        ring.stop()


__all__ = ["MAX_BYTES", "MAX_ENTRIES", "Page", "RecentCalls", "stop_waiting"]
