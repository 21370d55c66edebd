"""One sync connection: the Convex protocol over a WebSocket, as a state machine.

Every message in goes through ``_receive`` and every message out through ``_enqueue``: the
two places that look at the connection's ``ConnectionState``. Mutations run one at a time, in
order, on their own task, so a slow mutation never stalls the reading of the socket (and Pings
keep flowing); actions run concurrently, bounded. Transitions are built by the coordinator's
rounds and chained here, so ``startVersion`` always equals the previous ``endVersion``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from backend.engine import Engine
from backend.failures import failure_of
from backend.runtime import Runtime, TimerHandle, to_ms
from backend.sync import protocol
from backend.sync.admin import ADMIN, AdminKey, is_admin
from backend.sync.coordinator import SyncCoordinator
from backend.sync.identity import NO_TOKENS, TokenRejected, TokenVerifier
from backend.sync.versions import VersionChain
from backend.udf import logs
from backend.udf.context import ClientInfo, Identity
from backend.values.convex_json import to_json

log = logging.getLogger("backend.sync")


class Transport(Protocol):
    async def receive(self) -> str | bytes | None:
        """The next frame, or None once the peer has gone."""
        ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True)
class SessionLimits:
    max_message_bytes: int = 8 * 1024 * 1024
    max_queries: int = 1000
    max_queued_mutations: int = 256
    max_concurrent_actions: int = 16
    max_outgoing: int = 10_000
    messages_per_second: float = 200.0
    message_burst: float = 1000.0
    ping_after: float = 15.0


class ConnectionState(Enum):
    """Where a connection is. Only ``_receive`` (in) and ``_enqueue`` (out) act on it."""

    AWAITING_CONNECT = "awaiting Connect"  # only Connect (or an Event) is accepted
    OPEN = "open"
    CLOSING = "closing"  # sent away: queued messages go out, then the close; nothing else


# Close reasons the official client understands as "back off" (convex-protocol.md, section 10).
OVERLOADED = "TooManyConcurrentRequests"
CLOSE_POLICY = 1008
CLOSE_PROTOCOL = 4400


class SyncSession:
    def __init__(
        self,
        transport: Transport,
        engine: Engine,
        coordinator: SyncCoordinator,
        *,
        verifier: TokenVerifier | None = None,
        runtime: Runtime | None = None,
        limits: SessionLimits | None = None,
        client: ClientInfo | None = None,
    ) -> None:
        self.transport = transport
        self.client = client
        self.engine = engine
        self.coordinator = coordinator
        self.verifier = verifier
        self.runtime = runtime or engine.runtime
        self.limits = limits or SessionLimits()
        self.max_queries = self.limits.max_queries
        self.identity: Identity | None = None  # as the coordinator's queries see it
        self.session_id: str | None = None
        self._caller: Identity | None = None  # for mutations and actions, as of receipt
        self._identity_version = 0
        self._chain = VersionChain()
        self._skew: int | None = None
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._mutations: asyncio.Queue[tuple[protocol.Mutation, Identity | None]] = asyncio.Queue(
            self.limits.max_queued_mutations
        )
        self._actions = asyncio.Semaphore(self.limits.max_concurrent_actions)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._mutator: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.state = ConnectionState.AWAITING_CONNECT
        self._close_with: tuple[int, str] | None = None
        self._tokens = self.limits.message_burst
        self._tokens_at = self.runtime.monotonic()
        self._expiry: TimerHandle | None = None
        self._ping: TimerHandle | None = None
        self._last_sent = self.runtime.monotonic()

    # ---- running ------------------------------------------------------------------------
    #
    # An idle connection costs one task (the sender, waiting on its queue) besides the
    # transport's own: pings and token expiry are timers, the mutation worker exists only
    # while mutations are queued, and closing is a flag the sender acts on.

    async def run(self) -> None:
        """Serve the connection until the client leaves or is sent away."""
        self.coordinator.connect(self)
        self._sender = asyncio.create_task(self._send_loop(), name="sync-send")
        self._arm_ping(self.limits.ping_after)
        try:
            while True:
                raw = await self.transport.receive()
                if raw is None:
                    break
                try:
                    await self._receive(raw)
                except Exception:
                    # A bug must cost this connection only; the client reconnects with backoff.
                    log.exception("sync session failed")
                    self._close(1011, "InternalServerError")
        finally:
            self.coordinator.disconnect(self)
            for handle in (self._ping, self._expiry):
                if handle is not None:
                    handle.cancel()
            for task in (self._mutator, *self._tasks):
                if task is not None:
                    task.cancel()
            if self.state is not ConnectionState.CLOSING:
                self._outgoing.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sender, timeout=5)

    def _close(self, code: int, reason: str) -> None:
        """Send what is queued, then close with ``code`` and ``reason``."""
        if self.state is not ConnectionState.CLOSING:
            self.state = ConnectionState.CLOSING
            self._close_with = (code, reason[:120])
            self._outgoing.put_nowait(None)

    def protocol_violation(self, reason: str, message: str) -> None:
        """Close for a message that breaks the protocol; the reason is the close reason."""
        log.info("closing sync session: %s (%s)", reason, message)
        self._close(CLOSE_PROTOCOL, reason)

    def _overloaded(self, message: str) -> None:
        # A reason the client knows as "back off for a few seconds" (protocol, section 10).
        log.info("closing sync session: overloaded (%s)", message)
        self._close(CLOSE_POLICY, OVERLOADED)

    # ---- out ----------------------------------------------------------------------------

    def _enqueue(self, text: str) -> None:
        if self.state is ConnectionState.CLOSING:
            return
        if self._outgoing.qsize() >= self.limits.max_outgoing:
            self._overloaded("client is not reading its messages")
            return
        self._outgoing.put_nowait(text)

    def _arm_ping(self, delay: float) -> None:
        self._ping = self.runtime.timers.call_later(delay, self._ping_due)

    def _ping_due(self) -> None:
        # The client reconnects after 60 s without a message; a Ping after each quiet spell.
        quiet = self.runtime.monotonic() - self._last_sent
        if quiet >= self.limits.ping_after:
            self._enqueue(protocol.ping())
            quiet = 0.0
        self._arm_ping(self.limits.ping_after - quiet)

    async def _send_loop(self) -> None:
        while True:
            text = await self._outgoing.get()
            if text is None:
                break
            try:
                await self.transport.send(text)
            except Exception:
                break
            self._last_sent = self.runtime.monotonic()
        if self._close_with is not None:
            with contextlib.suppress(Exception):
                await self.transport.close(*self._close_with)

    def emit(
        self,
        modifications: list[str],
        *,
        ts: int,
        query_set: int | None,
        identity_version: int | None,
    ) -> None:
        start, end = self._chain.next(query_set=query_set, identity=identity_version, ts=ts)
        self._enqueue(
            protocol.transition_from_parts(start, end, modifications, client_clock_skew=self._skew)
        )

    # ---- in -----------------------------------------------------------------------------

    def _allow_message(self) -> bool:
        now = self.runtime.monotonic()
        self._tokens = min(
            self.limits.message_burst,
            self._tokens + (now - self._tokens_at) * self.limits.messages_per_second,
        )
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _receive(self, raw: str | bytes) -> None:
        if self.state is ConnectionState.CLOSING:
            return  # sent away: drain until the transport reports the close
        if not self._allow_message():
            self._overloaded("too many messages")
            return
        try:
            message = protocol.parse_client_message(raw, max_bytes=self.limits.max_message_bytes)
        except protocol.ProtocolError as error:
            self.protocol_violation(error.reason, error.message)
            return
        if isinstance(message, protocol.Connect):
            self._on_connect(message)
        elif self.state is ConnectionState.AWAITING_CONNECT and not isinstance(
            message, protocol.Event
        ):
            self.protocol_violation("MissingConnect", "Connect must be the first message")
        elif isinstance(message, protocol.ModifyQuerySet):
            self.coordinator.modify(self, message)
        elif isinstance(message, protocol.Mutation):
            try:
                self._mutations.put_nowait((message, self._caller))
            except asyncio.QueueFull:
                self._overloaded("too many queued mutations")
                return
            if self._mutator is None or self._mutator.done():
                self._mutator = asyncio.create_task(self._mutation_loop())
        elif isinstance(message, protocol.Action):
            self._spawn(self._run_action(message, self._caller))
        elif isinstance(message, protocol.Authenticate):
            await self._on_authenticate(message)

    def _on_connect(self, message: protocol.Connect) -> None:
        if self.state is not ConnectionState.AWAITING_CONNECT:
            self.protocol_violation("DuplicateConnect", "Connect was already received")
            return
        self.state = ConnectionState.OPEN
        self.session_id = message.session_id
        if message.client_ts is not None:
            # Whole milliseconds: the Rust client reads clientClockSkew as an i64 and drops
            # the whole Transition (then the socket) when it holds a fraction.
            self._skew = message.client_ts - round(self.runtime.now_ms())

    async def _on_authenticate(self, message: protocol.Authenticate) -> None:
        if message.base_version != self._identity_version:
            self.protocol_violation(
                "InvalidVersion",
                f"Authenticate from version {message.base_version}, "
                f"server has {self._identity_version}",
            )
            return
        if message.token_type == "None":  # noqa: S105 - a token type, not a password
            self._set_identity(None, None)
            return
        admin = message.token_type == "Admin"  # noqa: S105 - a token type, not a password
        error = "Admin tokens are not accepted" if admin else ""
        if admin:
            key = self.engine.services.find(AdminKey)
            if key is not None and key.matches(message.value):
                self._set_identity(ADMIN, None)
                return
            error = "Invalid admin key" if key is not None else error
        verified = None
        if not error:
            if self.verifier is None or not message.value:
                error = NO_TOKENS
            else:
                try:
                    verified = await self.verifier.verify(message.value)
                except TokenRejected as rejected:
                    error = rejected.message
        if verified is None:
            self._enqueue(protocol.auth_error(error, message.base_version, True))
            self._close(1000, "AuthError")
            return
        expires = verified.expires_at
        self._set_identity(verified.identity, None if expires is None else to_ms(expires))

    def _set_identity(self, identity: Identity | None, expires_ms: float | None) -> None:
        self._identity_version += 1
        self._caller = identity
        self.coordinator.authenticate(self, identity, self._identity_version)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if expires_ms is not None:
            delay = max(0.0, (expires_ms - self.runtime.now_ms()) / 1000)
            self._expiry = self.runtime.timers.call_later(delay, self._expired)

    def _expired(self) -> None:
        """An accepted token that expires while in use: tell the client, then close."""
        self._caller = None
        self._enqueue(protocol.auth_error("Token expired", self._identity_version, False))
        self._close(1000, "AuthError")

    # ---- functions ----------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mutation_loop(self) -> None:
        """One at a time, in order; ends when the queue is empty (restarted on demand)."""
        while not self._mutations.empty():
            message, caller = self._mutations.get_nowait()
            await self._run_mutation(message, caller)

    async def _run_mutation(self, message: protocol.Mutation, caller: Identity | None) -> None:
        assert self.session_id is not None
        with logs.capture() as captured:
            try:
                result = await self.engine.run_mutation(
                    message.udf_path,
                    message.args,
                    caller,
                    internal=is_admin(caller),
                    request=(self.session_id, message.request_id),
                    client=self.client,
                )
            except Exception as error:
                failed: Exception | None = error
            else:
                failed = None
        if failed is not None:
            text, data = _failure(failed)
            self._enqueue(
                protocol.mutation_response_failure(message.request_id, text, data, captured.lines)
            )
            # As Convex's sync worker does, a Transition follows every mutation result, even a
            # failure: the Rust client (and so the Python client) settles a mutation that
            # failed with a ConvexError only when the next Transition arrives. The round's
            # snapshot is at or past anything this failed mutation could have read.
            self.coordinator.transition_after(self, 0)
            return
        self._enqueue(
            protocol.mutation_response_success(
                message.request_id, to_json(result.value), result.ts, captured.lines
            )
        )
        self.coordinator.transition_after(self, result.ts)

    async def _run_action(self, message: protocol.Action, caller: Identity | None) -> None:
        async with self._actions:
            with logs.capture() as captured:
                try:
                    value = await self.engine.run_action(
                        message.udf_path, message.args, caller, internal=is_admin(caller)
                    )
                except Exception as error:
                    text, data = _failure(error)
                    self._enqueue(
                        protocol.action_response_failure(
                            message.request_id, text, data, captured.lines
                        )
                    )
                    return
            self._enqueue(
                protocol.action_response_success(message.request_id, to_json(value), captured.lines)
            )


def _failure(error: Exception) -> tuple[str, Any]:
    """The error reply's message and data: worded as over HTTP (``backend/failures.py``)."""
    failure = failure_of(error)
    if not failure.expected:
        log.exception("function call failed", exc_info=error)
    return failure.message, failure.data if failure.has_data else protocol.MISSING
