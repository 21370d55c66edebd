"""The seam between the engine and its subsystems: ``SystemContext``.

Auth, step-up verification, rate limits, mail, audit and the scheduler are engine code. They
run inside the transactions of app functions (``require_sensitive_action(ctx, ...)``,
``limiter.limit(ctx, ...)``) or in transactions of their own (``engine.system_write``), and they
reach the transaction and the engine through this one typed interface::

    system = SystemContext.of(ctx)        # in a query or mutation that an app function runs
    system = engine.system_context(db)    # in an engine.system_write / system_read body

    system.db           the transaction's SystemDatabase: every table, the engine's own too
    system.now          the transaction's time, frozen for the whole of it (``now_ms``: in ms)
    system.client       the caller's ClientInfo, or None when the transport does not know it
    system.auth         the caller, as ``ctx.auth`` sees them
    system.durably(w)   ``w(db)`` happens whether or not the transaction commits
    system.service(K)   the engine's registered ``K`` (``backend/services.py``), typed
    system.runtime      the engine's clock and randomness
    system.engine       the engine itself, for work outside this transaction
    system.reader()     a read-only ``QueryCtx`` on this transaction, to call app code with

Engine code that runs outside any transaction (an action that delivers mail, a service
that opens transactions of its own) uses the ``Engine``'s public methods: ``engine_of(ctx)``
finds the engine behind an action's ``ctx``.

A ``SystemContext`` reaches every table, so it is never handed to app code: app functions get
``ctx``, whose ``db`` stops short of the engine's tables (``_`` names).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from backend.runtime import Runtime, to_ms
from backend.transactions.client import ClientInfo
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.context import ActionCtx, Auth, QueryCtx

if TYPE_CHECKING:
    from backend.engine import Engine

T = TypeVar("T")
DurableWrite = Callable[[SystemDatabase], Awaitable[None]]


class SystemContext:
    """One transaction as an engine subsystem sees it (see the module's docstring)."""

    def __init__(self, engine: Engine, txn: Transaction, auth: Auth) -> None:
        self.engine = engine
        self.auth = auth
        self.db = SystemDatabase(txn)
        self._txn = txn

    @classmethod
    def of(cls, ctx: QueryCtx) -> SystemContext:
        """The transaction behind a query's or a mutation's ``ctx``, with its caller."""
        return cls(ctx._engine, ctx._txn, ctx.auth)

    @property
    def now(self) -> datetime:
        """The transaction's time, frozen for the whole of it (from the engine's clock)."""
        return self._txn.now

    @property
    def now_ms(self) -> float:
        return to_ms(self._txn.now)

    @property
    def client(self) -> ClientInfo | None:
        """Where the call came from, when the transport knows."""
        return self._txn.client

    @property
    def runtime(self) -> Runtime:
        return self.engine.runtime

    def service(self, kind: type[T]) -> T:
        """The engine's registered ``kind``; raises ``MissingService`` when there is none."""
        return self.engine.services.get(kind)

    def durably(self, write: DurableWrite) -> None:
        """``write(db)`` happens whether or not this transaction commits: inside it when it
        commits, and in a small transaction of its own right after a rollback. For the few
        records a failed call must leave behind (a refused protected action's audit event)."""
        self._txn.durably(write)

    def reader(self) -> QueryCtx:
        """A read-only ``ctx`` on this transaction, as the caller: what app callbacks get (a
        sensitive action's ``authorize`` and ``description``)."""
        return QueryCtx(self.engine, self._txn, self.auth)


def engine_of(ctx: QueryCtx | ActionCtx) -> Engine:
    """The engine running ``ctx``'s function. For the engine's own functions that work outside
    any transaction (mail delivery, an action), through the engine's public methods."""
    return ctx._engine


__all__ = ["DurableWrite", "SystemContext", "engine_of"]
