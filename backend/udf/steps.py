"""Calls made of several transactions, with work outside any transaction between them.

Some work must not run inside a transaction: argon2 takes tens of milliseconds of CPU (a
transaction open that long would stall every writer on SQLite), and an OAuth token exchange
waits on another server. A call that needs such work is written as steps::

    steps = engine.steps("_system/auth:signIn")
    admitted = await steps.transaction(admit)      # one transaction
    ok, rehash = await passwords.verify(...)       # outside any transaction
    return await steps.transaction(record)         # another transaction

and a mutation clients call is declared with ``@mutation_in_steps``: its handler takes the
``Steps`` where a mutation takes ``ctx`` (``sensitive:verifyPassword`` is one).

The rules, stated once for every such call:

- each step is one serializable transaction, retried alone when it loses a race, exactly as
  a mutation is; a step that has committed is never run again, so the work between steps
  runs once per call;
- nothing is held between steps: other commits land in between, so a later step reads again
  what it relies on and checks it still holds (the password just checked is still the
  account's) rather than trusting what an earlier step saw;
- a step that fails rolls back itself only: earlier steps stay committed, which is the point
  (an attempt spent before the password is checked stays spent);
- a mutation called over the wire answers a resend of the same request with its first
  outcome. That outcome is stored in the transaction of the step that gives the call's
  answer; a step that returns ``Proceed`` (there is more to do) stores none, so a request
  resent after a crash between steps runs again from the first step, which spends again. A
  resend of a call that has finished is answered at its first step, and the handler goes no
  further (``run`` sees to it: a handler never meets a replayed answer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.context import Auth, MutationCtx
from backend.udf.registry import FunctionKind, RegisteredFunction, Visibility

if TYPE_CHECKING:
    from backend.engine import Engine, MutationResult, WireRequest
    from backend.transactions.client import ClientInfo
    from backend.udf.context import Identity
    from backend.udf.system_context import SystemContext

S = TypeVar("S")
T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Proceed(Generic[S]):
    """What a step returns when the call goes on to further steps: ``state`` for them. It is
    never a call's answer, so it is never stored as one."""

    state: S


class Steps:
    """One call's sequence of transactions (see the module's rules)."""

    def __init__(
        self,
        engine: Engine,
        function_path: str,
        *,
        identity: Identity | None = None,
        request: WireRequest | None = None,
        client: ClientInfo | None = None,
    ) -> None:
        self.engine = engine
        self.function_path = function_path
        self.identity = identity
        self.client = client
        self._request = request
        self.last: MutationResult | None = None

    async def transaction(self, body: Callable[[SystemContext], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction of its own (retried alone on a conflict) and
        return its value. ``body`` sees the transaction as engine code does, the caller
        included (``system.auth``). A value other than ``Proceed`` is the call's answer."""
        engine, identity = self.engine, self.identity

        async def run(txn: Transaction) -> T:
            return await body(engine.system_context(SystemDatabase(txn), identity=identity))

        return await self._write(run)

    async def mutation(self, body: Callable[[MutationCtx], Awaitable[T]]) -> T:
        """As ``transaction``, with the transaction given as a mutation's ``ctx`` of the
        caller: for engine code that calls what mutations call (``require_sensitive_action``)."""
        engine, identity = self.engine, self.identity

        async def run(txn: Transaction) -> T:
            auth = Auth(identity, txn, engine.identity_resolver)
            return await body(MutationCtx(engine, txn, auth))

        return await self._write(run)

    async def _write(self, run: Callable[[Transaction], Awaitable[T]]) -> T:
        identity = self.identity
        self.last = await self.engine.write(
            run,
            function_path=self.function_path,
            identity=None if identity is None else identity.subject,
            request=self._request,
            client=self.client,
            remember=lambda value: not isinstance(value, Proceed),
        )
        if self.last.replayed:  # the call finished before: its stored answer is all there is
            raise _Answered(self.last)
        value: T = self.last.value
        return value

    async def run(
        self, handler: Callable[Concatenate[Steps, P], Awaitable[Any]], *a: P.args, **kw: P.kwargs
    ) -> MutationResult:
        """Run a mutation's handler in these steps and return the call's outcome: what its
        last step answered (the value stored for a resend). A handler that returns anything
        else broke the rules, and this raises ``RuntimeError``."""
        try:
            value = await handler(self, *a, **kw)
        except _Answered as replayed:
            return replayed.result
        if self.last is None or self.last.value is not value or isinstance(value, Proceed):
            raise RuntimeError(
                f"{self.function_path}: a mutation in steps must return what its last step "
                "returned, and that must not be Proceed"
            )
        return self.last


class _Answered(Exception):
    """Raised by a step that found the call's stored answer, caught by ``Steps.run``."""

    def __init__(self, result: MutationResult) -> None:
        super().__init__("replayed")
        self.result = result


class SteppedMutation(RegisteredFunction[Steps, P, R]):
    """A mutation whose handler takes ``Steps`` instead of ``ctx`` (``@mutation_in_steps``).
    To its callers it is a mutation like any other: same arguments, same answers."""


def mutation_in_steps(
    handler: Callable[Concatenate[Steps, P], Awaitable[R]],
) -> SteppedMutation[P, R]:
    """Declare a public mutation made of steps (the module's rules)."""
    return SteppedMutation(handler, FunctionKind.MUTATION, Visibility.PUBLIC)
