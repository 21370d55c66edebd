"""The engine: runs queries, mutations and actions against the store.

A query runs in one snapshot and returns its value with the read set it recorded. A mutation
runs at a snapshot with its writes in memory, and is then committed by the store's committer,
which checks its read set against what was committed since (optimistic concurrency,
``storage/occ.py``). When a commit after its snapshot wrote something it read, the whole
function runs again from the start at once, waiting its turn behind the other retries that met
the same document or range (``Store.turn``), and the reason is logged; a busy database is
retried with jittered exponential backoff. Only after a bounded number of attempts does the
caller see ``CONFLICT``. Nothing of a failed attempt is kept. A committed mutation gets a
timestamp from the store, and the engine tells its commit listeners (the scheduler, the sync
layer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from backend.environment import Environment
from backend.errors import SERVER_ERROR, ConvexError, ErrorCode, InternalError, invalid_argument
from backend.mail.outbox import MailTransport
from backend.runtime import Runtime, to_ms, to_ns
from backend.schema_definition import Schema
from backend.services import Services
from backend.storage.deployment import Deployment, NotDeployed, load_deployment, read_fence
from backend.storage.store import (
    Outcome,
    ReadSetConflict,
    RetryableConflict,
    SchemaFenceMoved,
    StorageError,
    Store,
    StoreReader,
    StoreUnavailable,
    StoreWriter,
)
from backend.transactions.limits import Limits
from backend.transactions.readset import ReadSet, WriteSet
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf import logs
from backend.udf.app import App, canonical_path
from backend.udf.calls import function_call
from backend.udf.context import (
    ActionAuth,
    ActionCtx,
    Auth,
    ClientInfo,
    Identity,
    IdentityResolver,
    MutationCtx,
    QueryCtx,
)
from backend.udf.recent_calls import RecentCalls
from backend.udf.registry import FunctionKind, RegisteredFunction, Visibility
from backend.udf.steps import SteppedMutation, Steps
from backend.udf.system_context import SystemContext
from backend.udf.validation import ReturnsValidationError
from backend.values.convex_json import dumps, to_json

log = logging.getLogger("backend.engine")
T = TypeVar("T")
AnyFunction = RegisteredFunction[Any, Any, Any]
CommitListener = Callable[[int, WriteSet], None]


class FunctionFailed(InternalError):
    """A function raised something other than ``ConvexError``: a bug. ``public_message`` is
    what the caller may see (just "Server Error" unless ``DEV_MODE``)."""

    def __init__(self, public_message: str) -> None:
        super().__init__(public_message)
        self.public_message = public_message


@dataclass(frozen=True)
class QueryResult:
    value: Any
    read_set: ReadSet
    ts: int
    used_auth: bool
    journal: str | None = None
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryOutcome:
    """A query's value or its caller-visible failure, with what it read either way."""

    value: Any
    error: ConvexError | FunctionFailed | None
    read_set: ReadSet
    ts: int
    used_auth: bool
    journal: str | None
    log_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class MutationResult:
    value: Any
    ts: int
    replayed: bool = False
    log_lines: tuple[str, ...] = ()


class WireRequest(NamedTuple):
    """A mutation sent over the wire: ``(sessionId, requestId)``, chosen by the client, and the
    owner of its outcome (``outcome_owner`` of the caller). A resend is answered from the stored
    outcome only for the same owner: the ids are the client's own, so anyone may send another
    client's pair, and would otherwise be answered with that client's result."""

    session_id: str
    request_id: int
    owner: str | None = None


def outcome_owner(identity: Identity | None) -> str | None:
    """Who an outcome belongs to: the caller's issuer, user and session, as a fixed-length
    digest (a token's subject may be long); None for nobody. The identity as claimed, so a
    resend with a renewed token for the same session is the same owner."""
    if identity is None:
        return None
    who = dumps([identity.issuer, identity.subject, identity.session_id or ""])
    return hashlib.sha256(who.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 40
    base_delay: float = 0.002
    max_delay: float = 0.25


class Engine:
    def __init__(
        self,
        store: Store,
        app: App,
        *,
        system_schema: Schema | None = None,
        system_functions: dict[str, AnyFunction] | None = None,
        runtime: Runtime | None = None,
        limits: Limits | None = None,
        dev_mode: bool = False,
        identity_resolver: IdentityResolver | None = None,
        retry: RetryPolicy | None = None,
        mail_transport: MailTransport | None = None,
    ) -> None:
        self.store = store
        self.app = app
        # the schema the code declares; ``schema`` is the same, with the indexes where the
        # deployed schema keeps them, once ``use_deployment`` has run
        self.code_schema = app.schema.merged(system_schema) if system_schema else app.schema
        self.schema = self.code_schema
        self.deployment: Deployment | None = None
        self.outdated: frozenset[str] = frozenset()  # tables this process may not write
        self.functions: dict[str, AnyFunction] = dict(app.functions)
        for path, fn in (system_functions or {}).items():
            if path in self.functions:
                raise TypeError(f"{path} is defined by the app and by the engine")
            fn.path = path
            self.functions[path] = fn
        self.runtime = runtime or Runtime()
        self.limits = limits or Limits()
        self.dev_mode = dev_mode
        self.identity_resolver = identity_resolver
        self.retry = retry or RetryPolicy()
        self.commits = 0  # mutations that succeeded (committed, or wrote nothing)
        self.retries = 0  # attempts run again: conflicts on the read set, busy databases
        self._last_hot: dict[str, str] = {}  # call -> the key its last conflict was on
        self._listeners: list[CommitListener] = []
        self.services = Services()
        """The subsystems an assembly plugs in, by class (``backend/services.py``)."""
        self.recent_calls = RecentCalls()
        """This process's last calls, for the dashboard's live log (``udf/recent_calls.py``)."""
        if mail_transport is not None:
            self.services.register(MailTransport, mail_transport)
        logs.install(app.package)  # print() and the app's logging become function logs
        self.environment = Environment(self)
        """The deployment's environment variables, as ``ctx.env`` reads them."""
        self._listeners.append(self.environment.on_commit)

    # ---- the deployed schema -----------------------------------------------------------

    async def load_deployment(self, *, require: bool = False) -> Deployment:
        """Read the deployed schema and follow it: indexes where it keeps them, and the fence
        every commit checks (``storage/deployment.py``). With ``require``, raise
        ``NotDeployed`` unless the code's schema is exactly the deployed one."""
        deployment = await load_deployment(self.store)
        if require and deployment.differences(self.code_schema):
            raise NotDeployed(deployment.differences(self.code_schema))
        self.use_deployment(deployment)
        return deployment

    async def follow_deployment(self) -> bool:
        """Read the deployment again if a deploy has moved the fence since; True if it had.
        (Commits notice at once; this lets a process that only reads notice too.)"""
        if self.deployment is None:
            return False
        async with self.store.engine.connect() as conn:
            fence = await read_fence(conn, self.store.kind)
        if fence == self.deployment.fence:
            return False
        self.use_deployment(await load_deployment(self.store))
        return True

    def use_deployment(self, deployment: Deployment) -> None:
        storage = deployment.storage_for(self.code_schema)
        undeployed = [d for d in self.code_schema.indexes if d not in storage]
        self.schema = self.code_schema.with_storage(storage, undeployed)
        self.outdated = frozenset(deployment.outdated_tables(self.code_schema))
        self.deployment = deployment
        if self.outdated:
            log.warning(
                "the deployed schema differs from this app's for %s: writes to them are refused "
                "until the server runs the deployed app",
                ", ".join(sorted(self.outdated)),
            )

    def _check_deployed(self, txn: Transaction) -> None:
        """Refuse a commit to a table the deployed schema no longer matches (this process runs
        an older app than the one deployed): it would keep the wrong indexes."""
        if not self.outdated:
            return
        for doc_id in txn.write_set.ids:
            table = self.schema.table_of_id(doc_id)
            if table in self.outdated:
                raise ConvexError(
                    ErrorCode.SCHEMA_OUTDATED,
                    f"table {table!r} was deployed with a newer schema than this server's app; "
                    "nothing was written. The server must be restarted with the deployed app.",
                    table=table,
                )

    # ---- function lookup and invocation -------------------------------------------------

    def resolve(self, fn: AnyFunction | str, kind: FunctionKind, *, internal: bool) -> AnyFunction:
        """The registered function behind a path or a reference, checked for kind and reach."""
        if isinstance(fn, RegisteredFunction):
            if fn.path is None or self.functions.get(fn.path) is not fn:
                raise TypeError(f"{fn!r} is not part of this app")
            found = fn
        else:
            if not isinstance(fn, str) or len(fn) > 256:
                raise invalid_argument("a function path must be a string", "path")
            path = canonical_path(fn)
            candidate = self.functions.get(path)
            if candidate is None or (candidate.visibility is Visibility.INTERNAL and not internal):
                raise ConvexError(
                    ErrorCode.NOT_FOUND, f"Could not find public function for '{path}'", path=path
                )
            found = candidate
        if found.kind is not kind:
            raise invalid_argument(
                f"{found.path} is a {found.kind.value}, not a {kind.value}", "path"
            )
        return found

    def _check_args(self, args: Any) -> None:
        encoded = dumps(to_json(args, max_depth=self.limits.max_depth))
        if len(encoded) > self.limits.max_args_bytes:
            raise ConvexError(
                ErrorCode.LIMIT_EXCEEDED,
                f"arguments are {len(encoded)} bytes; the limit is {self.limits.max_args_bytes}",
            )

    async def _invoke(self, fn: AnyFunction, ctx: Any, args: dict[str, Any]) -> Any:
        positional, keywords = fn.validate_args(args)
        try:
            result = await fn.handler(ctx, *positional, **keywords)
        except (ConvexError, RetryableConflict, StorageError, DBAPIError, FunctionFailed):
            raise
        except Exception as exc:
            raise self._failure(fn, exc) from exc
        value = self._result(fn, result)
        try:
            fn.validate_returns(value)
        except ReturnsValidationError as exc:
            # the function's bug, not the caller's: logged whole, shown only in DEV_MODE; a
            # mutation's writes go with the failure (this runs inside its transaction)
            log.error("%s", exc.message)
            raise FunctionFailed(exc.message if self.dev_mode else SERVER_ERROR) from None
        return value

    def _result(self, fn: AnyFunction, result: Any) -> Any:
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="python")
        try:
            encoded = dumps(to_json(result, max_depth=self.limits.max_depth))
        except ConvexError as exc:
            raise self._failure(fn, TypeError(f"{fn.path} returned {exc.message}")) from exc
        if len(encoded) > self.limits.max_result_bytes:
            raise ConvexError(ErrorCode.LIMIT_EXCEEDED, f"{fn.path} returned too large a value")
        return result

    def _failure(self, fn: AnyFunction, exc: BaseException) -> FunctionFailed:
        log.error("%s failed", fn.path, exc_info=exc)
        if not self.dev_mode:
            return FunctionFailed("Server Error")
        where = ""
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if Path(frame.filename).name != "engine.py":
                where = f" at {frame.filename}:{frame.lineno}"
                break
        return FunctionFailed(f"Server Error: {type(exc).__name__}: {exc}{where}")

    async def _call_nested(
        self, ctx: QueryCtx, fn: AnyFunction | str, args: dict[str, Any], kind: str
    ) -> Any:
        target = self.resolve(fn, FunctionKind(kind), internal=True)
        nested_ctx: QueryCtx
        if target.kind is FunctionKind.MUTATION:
            if not isinstance(ctx, MutationCtx):
                raise TypeError("a query cannot run a mutation")
            nested_ctx = MutationCtx(self, ctx._txn, ctx.auth)
        else:
            nested_ctx = QueryCtx(self, ctx._txn, ctx.auth)
        return await self._invoke(target, nested_ctx, args)

    # ---- queries ------------------------------------------------------------------------

    async def query_with_reads(
        self,
        fn: AnyFunction | str,
        args: dict[str, Any],
        identity: Identity | None,
        *,
        internal: bool = False,
    ) -> QueryResult:
        """Run a query at the newest snapshot; return its value, read set and timestamp."""
        function = self.resolve(fn, FunctionKind.QUERY, internal=internal)
        self._check_args(args)
        async with self.store.snapshot() as reader:
            return await self.query_at(reader, function, args, identity)

    async def query_at(
        self,
        reader: StoreReader,
        function: AnyFunction,
        args: dict[str, Any],
        identity: Identity | None,
        *,
        journal: str | None = None,
    ) -> QueryResult:
        """Run a resolved query inside an open snapshot (the sync layer runs many in one)."""
        await self.environment.fresh()
        txn = Transaction(reader, self.schema, self.runtime, self.limits, now=self.runtime.now())
        txn.journal_in = journal
        auth = Auth(identity, txn, self.identity_resolver)
        with function_call(function.path, "query", identity, recent=self.recent_calls) as call:
            value = await self._invoke(function, QueryCtx(self, txn, auth), args)
        return QueryResult(
            value,
            txn.read_set,
            reader.snapshot_ts,
            auth.used,
            txn.journal_out,
            tuple(call.logs.lines),
        )

    async def subscribe_at(
        self,
        reader: StoreReader,
        function: AnyFunction,
        args: dict[str, Any],
        identity: Identity | None,
        *,
        journal: str | None = None,
    ) -> QueryOutcome:
        """Like ``query_at``, but a failure is an outcome too: a subscription to a query that
        fails must still re-run when what it read changes."""
        await self.environment.fresh()
        txn = Transaction(reader, self.schema, self.runtime, self.limits, now=self.runtime.now())
        txn.journal_in = journal
        auth = Auth(identity, txn, self.identity_resolver)
        try:
            with function_call(function.path, "query", identity, recent=self.recent_calls) as call:
                self._check_args(args)
                value = await self._invoke(function, QueryCtx(self, txn, auth), args)
        except StoreUnavailable:
            raise  # not the query's outcome: nothing it read may be kept, it runs again later
        except (ConvexError, FunctionFailed) as error:
            return QueryOutcome(
                None,
                error,
                txn.read_set,
                reader.snapshot_ts,
                auth.used,
                None,
                tuple(call.logs.lines),
            )
        return QueryOutcome(
            value,
            None,
            txn.read_set,
            reader.snapshot_ts,
            auth.used,
            txn.journal_out,
            tuple(call.logs.lines),
        )

    async def run_query(
        self,
        fn: AnyFunction | str,
        args: dict[str, Any],
        identity: Identity | None = None,
        *,
        internal: bool = False,
    ) -> Any:
        function = self.resolve(fn, FunctionKind.QUERY, internal=internal)
        self._check_args(args)
        await self.environment.fresh()
        # As ``query_at`` does, but only the value is wanted: the snapshot need not learn its
        # timestamp, which saves a statement.
        with function_call(function.path, "query", identity, recent=self.recent_calls):
            async with self.store.snapshot(timestamped=False) as reader:
                txn = Transaction(
                    reader, self.schema, self.runtime, self.limits, now=self.runtime.now()
                )
                auth = Auth(identity, txn, self.identity_resolver)
                return await self._invoke(function, QueryCtx(self, txn, auth), args)

    # ---- mutations ----------------------------------------------------------------------

    async def run_mutation(
        self,
        fn: AnyFunction | str,
        args: dict[str, Any],
        identity: Identity | None = None,
        *,
        internal: bool = False,
        request: tuple[str, int] | None = None,
        client: ClientInfo | None = None,
    ) -> MutationResult:
        """Run a mutation exactly once; ``request=(sessionId, requestId)`` makes a resend of the
        same request by the same caller answer with the first outcome instead of running again
        (a resend by anyone else is refused with ``FORBIDDEN``)."""
        function = self.resolve(fn, FunctionKind.MUTATION, internal=internal)
        self._check_args(args)
        wire = None if request is None else WireRequest(*request, outcome_owner(identity))
        await self.environment.fresh()
        with function_call(function.path, "mutation", identity, recent=self.recent_calls) as call:
            if isinstance(function, SteppedMutation):  # several transactions (udf/steps.py)
                positional, named = function.validate_args(args)
                assert function.path is not None
                steps = Steps(self, function.path, identity=identity, request=wire, client=client)
                result = await steps.run(function.handler, *positional, **named)
                return dataclasses.replace(result, log_lines=tuple(call.logs.lines))

            async def body(txn: Transaction) -> Any:
                call.logs.restart()  # a retried attempt's lines replace the lost one's
                auth = Auth(identity, txn, self.identity_resolver)
                return await self._invoke(function, MutationCtx(self, txn, auth), args)

            result = await self.write(
                body,
                function_path=function.path,
                identity=identity.subject if identity else None,
                request=wire,
                client=client,
                hint=f"{function.path}:{dumps(to_json(args))}",
            )
        return dataclasses.replace(result, log_lines=tuple(call.logs.lines))

    async def write(
        self,
        body: Callable[[Transaction], Awaitable[T]],
        *,
        function_path: str | None = None,
        identity: str | None = None,
        request: WireRequest | tuple[str, int] | None = None,
        client: ClientInfo | None = None,
        remember: Callable[[Any], bool] | None = None,
        hint: str | None = None,
    ) -> MutationResult:
        """Run ``body`` in a serializable transaction, retrying lost races; commit its writes.

        ``hint`` names the call (function and arguments): when the same call last met a
        document or range that retries are now lined up for, it joins that line at once
        instead of running once only to be sent there (scheduling only: the check at commit
        decides what commits).

        With ``request``, a resend of the same ``(sessionId, requestId)`` by its owner is
        answered from the stored outcome (a bare pair belongs to nobody: pass on the
        ``WireRequest`` that ``run_mutation`` made); ``remember`` may decline to store an
        outcome (a first step of several).
        Writes registered with ``txn.durably`` are kept even when the body fails.
        """
        policy = self.retry
        attempts: list[Transaction] = []
        # where earlier attempts met commits: a retry waits its turn on every one of them (a
        # mutation that reads two hot documents, a rate limit and a failure record say, would
        # otherwise queue on one and keep losing on the other)
        hot: set[str] = set()
        if hint is not None:
            last = self._last_hot.get(hint)
            if last is not None and self.store.has_line(last):
                hot.add(last)
        try:
            for attempt in range(policy.max_attempts):
                try:
                    if not hot:
                        return await self._attempt(
                            body, function_path, identity, request, client, remember, attempts
                        )
                    async with contextlib.AsyncExitStack() as turns:
                        for key in sorted(hot):  # one order for all: no two wait on each other
                            await turns.enter_async_context(self.store.turn(key))
                        return await self._attempt(
                            body,
                            function_path,
                            identity,
                            request,
                            client,
                            remember,
                            attempts,
                            holding=frozenset(hot),
                        )
                except SchemaFenceMoved:
                    # a deploy went live since we last looked: follow it, then try again
                    log.info("the deployed schema changed; reading it again")
                    self.use_deployment(await load_deployment(self.store))
                except ReadSetConflict as exc:
                    # a commit after our snapshot wrote what we read: run again at once, in
                    # line behind the other retries that met the same document or range
                    self.retries += 1
                    hot.add(exc.conflict.key)
                    if exc.foreign:  # its turns are taken across processes for a while
                        self.store.note_met_elsewhere(exc.conflict.key)
                    if hint is not None:
                        if len(self._last_hot) > 10_000:
                            self._last_hot.clear()
                        self._last_hot[hint] = exc.conflict.key
                    log.info("%s conflicted on %s; attempt %d", function_path, exc, attempt + 1)
                except RetryableConflict as exc:
                    self.retries += 1
                    log.debug("%s lost a race (%s); attempt %d", function_path, exc, attempt + 1)
                    delay = min(policy.max_delay, policy.base_delay * 2**attempt)
                    jitter = 0.5 + self.runtime.random.randbelow(1000) / 1000
                    await self.runtime.timers.sleep(delay * jitter)
            raise ConvexError(
                ErrorCode.CONFLICT,
                "The write kept conflicting with concurrent writes; nothing was written. "
                "Try again.",
            )
        except StoreUnavailable:
            raise  # nothing can be kept while the database is out of reach
        except BaseException:
            if attempts and attempts[-1].durable and not attempts[-1].committed:
                await self._write_durably(attempts[-1], function_path)
            raise

    async def _write_durably(self, failed: Transaction, function_path: str | None) -> None:
        """The records a failed call must leave behind, in a transaction of their own."""

        async def keep(db: SystemDatabase) -> None:
            for write in failed.durable:
                await write(db)

        try:
            await self.system_write(keep, label=f"{function_path or '_system'}#durable")
        except StoreUnavailable:  # the outage itself is logged once, by the store
            log.warning("the durable writes of a failed %s were lost: no database", function_path)
        except Exception:  # never hide the call's own error behind this one
            log.exception("could not keep the durable writes of a failed %s", function_path)

    async def _attempt(
        self,
        body: Callable[[Transaction], Awaitable[Any]],
        function_path: str | None,
        identity: str | None,
        request: WireRequest | tuple[str, int] | None,
        client: ClientInfo | None = None,
        remember: Callable[[Any], bool] | None = None,
        attempts: list[Transaction] | None = None,
        holding: frozenset[str] = frozenset(),
    ) -> MutationResult:
        wire = None if request is None else WireRequest(*request)
        pending = None
        async with self.store.mutation() as writer:
            if wire is not None:
                previous = await writer.find_outcome(wire.session_id, wire.request_id)
                if previous is not None:
                    if previous.owner != wire.owner:
                        # Not a replay for this caller, and not a new run either: the pair is
                        # taken, and running under it would forfeit exactly-once for its owner.
                        raise ConvexError(
                            ErrorCode.FORBIDDEN,
                            "This requestId was already used on this sessionId by another "
                            "caller; send the mutation with a new requestId",
                        )
                    value = _load_outcome(previous.outcome_json)
                    return MutationResult(value, previous.ts, replayed=True)
            now = self.runtime.now()
            txn = Transaction(writer, self.schema, self.runtime, self.limits, now=now)
            txn.client = client
            if attempts is not None:
                attempts.append(txn)
            value = await body(txn)
            for durable in txn.durable:  # committing: they simply join this transaction
                await durable(SystemDatabase(txn))
            outcome = None
            if wire is not None and (remember is None or remember(value)):
                outcome = Outcome(
                    wire.session_id,
                    wire.request_id,
                    _dump_outcome(value),
                    int(to_ms(now)),
                    wire.owner,
                )
            ts = 0
            if txn.write_set.is_empty():
                ts = await writer.current_ts()
            else:
                self._check_deployed(txn)
                # the commit saves the outcome too, under its timestamp (no statement of its own)
                pending = writer.pending(
                    read_set=txn.read_set,
                    write_set=txn.write_set,
                    now_ns=to_ns(now),
                    function_path=function_path,
                    identity=identity,
                    outcome=outcome,
                    fence=self.deployment.fence if self.deployment is not None else None,
                )
        # the snapshot is closed: the committer checks what it read and writes (storage/occ.py)
        if pending is not None:
            ts = await self.store.commit(pending, holding=holding)
        elif outcome is not None:
            await self.store.save_outcome(outcome, ts)
        txn.committed = True
        self.commits += 1
        if pending is not None:
            self._notify(ts, txn.write_set)
        return MutationResult(value, ts)

    # ---- actions ------------------------------------------------------------------------

    async def run_action(
        self,
        fn: AnyFunction | str,
        args: dict[str, Any],
        identity: Identity | None = None,
        *,
        internal: bool = False,
    ) -> Any:
        """Run an action. ``ctx.auth`` checks ``identity``'s session at every look, as
        queries and mutations do (a signed-out session is nobody); the queries and mutations
        it runs get the identity as claimed and check it themselves."""
        function = self.resolve(fn, FunctionKind.ACTION, internal=internal)
        self._check_args(args)
        await self.environment.fresh()
        with function_call(function.path, "action", identity, recent=self.recent_calls):
            return await self._invoke(function, self.action_context(identity), args)

    def action_context(self, identity: Identity | None) -> ActionCtx:
        """The ``ctx`` of an action run by ``identity`` (an HTTP action's too)."""
        check = self._live_identity if self.identity_resolver is not None else None
        return ActionCtx(self, ActionAuth(identity, check), self.runtime.now())

    async def _live_identity(self, identity: Identity) -> Identity | None:
        """``identity`` if its session is alive now (the resolver, in a snapshot of its own)."""
        resolver = self.identity_resolver
        assert resolver is not None
        async with self.store.snapshot(timestamped=False) as reader:
            txn = Transaction(
                reader, self.schema, self.runtime, self.limits, now=self.runtime.now()
            )
            return await resolver(txn, identity)

    # ---- engine-internal access ---------------------------------------------------------

    async def system_write(
        self, body: Callable[[SystemDatabase], Awaitable[T]], *, label: str = "_system"
    ) -> tuple[T, int]:
        """Run engine code that may touch system tables, in its own serializable transaction."""
        holder: list[T] = []

        async def run(txn: Transaction) -> Any:
            holder.append(await body(SystemDatabase(txn)))
            return None

        result = await self.write(run, function_path=label)
        return holder[-1], result.ts

    async def system_read(self, body: Callable[[SystemDatabase], Awaitable[T]]) -> T:
        async with self.store.snapshot() as reader:
            txn = Transaction(
                reader, self.schema, self.runtime, self.limits, now=self.runtime.now()
            )
            return await body(SystemDatabase(txn))

    def steps(
        self,
        function_path: str,
        *,
        identity: Identity | None = None,
        client: ClientInfo | None = None,
    ) -> Steps:
        """A call of engine code made of several transactions, with work outside any
        transaction between them (``udf/steps.py`` states the rules)."""
        return Steps(self, function_path, identity=identity, client=client)

    def system_context(
        self, db: SystemDatabase, *, identity: Identity | None = None
    ) -> SystemContext:
        """``db``'s transaction as an engine subsystem sees it (``backend/udf/system_context.py``),
        for engine code in a ``system_write``, ``system_read`` or ``write`` body. ``identity``
        is the caller, whose session ``system.auth`` checks as ``ctx.auth`` does."""
        return SystemContext(self, db.txn, Auth(identity, db.txn, self.identity_resolver))

    # ---- commit notification ------------------------------------------------------------

    def add_commit_listener(self, listener: CommitListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, ts: int, write_set: WriteSet) -> None:
        for listener in list(self._listeners):
            try:
                listener(ts, write_set)
            except Exception:  # a listener must never undo a commit's success
                log.exception("commit listener failed")


def _dump_outcome(value: Any) -> str:
    return dumps(to_json(value))


def _load_outcome(text: str) -> Any:
    from backend.values.convex_json import from_json, loads

    return from_json(loads(text))


__all__ = [
    "Engine",
    "FunctionFailed",
    "MutationResult",
    "QueryResult",
    "RetryPolicy",
    "StoreWriter",
    "WireRequest",
    "outcome_owner",
]
