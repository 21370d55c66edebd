"""How a process learns that the log has grown: its own commits, PostgreSQL notifications
from other processes, and a periodic catch-up so that a lost notification only delays an
update. All three only *wake* the reader; what changed is always read from the log itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from backend.runtime import LoopTimers, Timers
from backend.storage.database import DatabaseKind, libpq_dsn
from backend.storage.store import Store

log = logging.getLogger("backend.sync")


class PostgresListener:
    """``LISTEN`` on the store's commit channel, reconnecting with backoff when it drops
    (0.5 s, doubling to 10 s, waited on ``timers``: a fake clock's timers in a test)."""

    def __init__(
        self, store: Store, on_notify: Callable[[], None], timers: Timers | None = None
    ) -> None:
        self._store = store
        self._on_notify = on_notify
        self._timers: Timers = timers or LoopTimers()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._store.kind is DatabaseKind.POSTGRESQL and self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        import asyncpg

        delay = 0.5
        warned = False  # once per outage: the store logs the outage itself
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(libpq_dsn(self._store.url))
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_args, lost=lost: lost.set())
                await conn.add_listener(
                    self._store.notify_channel, lambda *_args: self._on_notify()
                )
                delay = 0.5
                warned = False
                self._on_notify()  # we may have missed commits while (re)connecting
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not warned:
                    log.warning(
                        "commit notifications unavailable (%s); retrying", type(exc).__name__
                    )
                    warned = True
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            await self._timers.sleep(delay)
            delay = min(delay * 2, 10.0)
