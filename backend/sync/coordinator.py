"""The subscription coordinator: one per process, it keeps every live query up to date.

Design, in one place, because the invariants depend on all of it together:

- **One snapshot per round.** Work arrives as requests from connections (add or remove
  queries, a new identity, "send me a transition at or past ts T" after a mutation) and as
  wake-ups when the log grew. A *round* opens one read snapshot at timestamp S, takes the
  write sets of the commits in (P, S] (P: where the last round stopped) from the committer's
  window when this process knows them all, else from the ``commits`` table, asks the
  invalidation index which live queries they touched, re-runs just those, then serves the
  requests, all inside that snapshot. Every result a round sends is therefore valid at
  exactly S, and each connection gets at most one Transition per round, to S: all of one
  client's queries move to the same timestamp together. Every message is encoded by
  ``protocol.py`` (a shared query's result once, for all its subscribers).
- **Shared queries.** Subscriptions whose *effective* query is the same (function, arguments,
  the journal it runs with, and, only when the function looked at ``ctx.auth``, the same
  identity) are one ``SharedQuery``: run once per round, its result encoded once, and spliced
  into each subscriber's Transition. The journal is part of what a query means: a paginated
  query subscribed without one fixes its page's end on its first run and keeps it (Convex's
  journal), so once that page has grown it is no longer "the first ``numItems`` rows". A
  ``SharedQuery`` is therefore filed under the journal it runs with now, never under the one
  its first subscriber sent: a new subscriber without a journal runs the query afresh and
  shares only with a query whose journal came out the same, as Convex's query cache does.
- **Cost.** A commit costs a lookup in the invalidation index (per-index interval trees) plus
  the re-runs of the queries it actually affects, never a scan of all subscriptions.
- **Many processes.** Commits made by other processes are found in the ``commits`` table;
  notifications only decide *when* to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.engine import Engine, FunctionFailed, QueryOutcome
from backend.errors import ConvexError, ErrorCode
from backend.storage.store import StoreReader, StoreUnavailable
from backend.sync.admin import is_admin
from backend.sync.invalidation import SubscriptionIndex
from backend.sync.protocol import (
    AddQuery,
    ModifyQuerySet,
    RemoveQuery,
    SharedModification,
    encode_modification,
    error_message_for,
    query_failed,
    query_removed,
    shared_query_failed,
    shared_query_updated,
)
from backend.transactions.readset import WriteSet
from backend.udf.context import Identity
from backend.udf.registry import FunctionKind, RegisteredFunction
from backend.values.convex_json import dumps, to_json

log = logging.getLogger("backend.sync")

QueryKey = tuple[str, str, tuple[str, str | None] | None, str | None]


class Subscriber(Protocol):
    """What the coordinator needs of a connection."""

    identity: Identity | None
    max_queries: int

    def emit(
        self,
        modifications: list[str],
        *,
        ts: int,
        query_set: int | None,
        identity_version: int | None,
    ) -> None:
        """Queue one Transition to ``ts`` carrying these encoded modifications."""
        ...

    def protocol_violation(self, reason: str, message: str) -> None: ...


@dataclass(eq=False)
class SharedQuery:
    key: QueryKey | None  # where ``_queries`` files it (None: listed nowhere, never shared)
    function: RegisteredFunction[Any, Any, Any]
    args: dict[str, Any]
    identity: Identity | None
    journal: str | None
    args_text: str = ""  # ``args`` encoded: part of the key
    subscribers: dict[Subscriber, set[int]] = field(default_factory=dict)
    result_text: str = ""  # the encoded value or error, to compare runs
    # the modification, encoded once per result and shared by subscribers (protocol.py)
    _shared: SharedModification = field(default_factory=lambda: shared_query_updated("null"))

    def apply(self, outcome: QueryOutcome) -> bool:
        """Take a new outcome; True when the client-visible result changed."""
        journal = outcome.journal if outcome.journal is not None else self.journal
        self.journal = journal
        lines = outcome.log_lines  # sent with a changed result, never compared
        if outcome.error is None:
            value = dumps(to_json(outcome.value))
            text = f"ok:{value}"
            self._shared = shared_query_updated(value, lines, journal)
        else:
            message, data = _describe(outcome.error)
            text = f"err:{message}:{data}"
            self._shared = shared_query_failed(message, data, lines, journal)
        changed = text != self.result_text
        self.result_text = text
        return changed

    def modification(self, query_id: int) -> str:
        return self._shared.for_query(query_id)


def _describe(error: ConvexError | FunctionFailed) -> tuple[str, str | None]:
    if isinstance(error, ConvexError):
        data = dumps(to_json(error.data))
        return error_message_for(to_json(error.data)), data
    return error.public_message, None


@dataclass
class _Pending:
    """What a round owes one connection."""

    modifications: list[str] = field(default_factory=list)
    query_set: int | None = None
    identity_version: int | None = None
    min_ts: int | None = None
    wants_transition: bool = False


class SyncCoordinator:
    def __init__(self, engine: Engine, *, catch_up_interval: float = 1.0) -> None:
        self.engine = engine
        self.catch_up_interval = catch_up_interval
        self._queries: dict[QueryKey, SharedQuery] = {}  # by effective query, for sharing
        self._live: set[SharedQuery] = set()
        self._index: SubscriptionIndex[SharedQuery] = SubscriptionIndex()
        self._subscriptions: dict[Subscriber, dict[int, SharedQuery]] = {}
        self._query_set_versions: dict[Subscriber, int] = {}
        self._requests: list[tuple[Subscriber, Callable[[StoreReader, _Pending], Any]]] = []
        self._wake = asyncio.Event()
        self._processed_ts: int | None = None
        self._full = True  # the next round must open a snapshot (see ``_committed_here``)
        self._tasks: list[asyncio.Task[None]] = []
        self._remove_listener: Callable[[], None] | None = None
        self.rounds = 0
        self.skipped = 0  # rounds that needed no snapshot (``_skip_round``)
        self.executions = 0

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._processed_ts = await self.engine.store.latest_ts()
        self._remove_listener = self.engine.add_commit_listener(self._committed_here)
        self._tasks = [
            asyncio.create_task(self._loop(), name="sync-rounds"),
            asyncio.create_task(self._catch_up(), name="sync-catch-up"),
        ]

    async def stop(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        """Run a round soon, reading the database (another process may have committed)."""
        self._full = True
        self._wake.set()

    def _committed_here(self, _ts: int, _writes: WriteSet) -> None:
        """A commit of this process: a round soon, which may skip the database when no live
        query depends on what the commits since the last round wrote."""
        self._wake.set()

    @property
    def query_count(self) -> int:
        return len(self._live)

    # ---- requests from connections -------------------------------------------------------

    def connect(self, subscriber: Subscriber) -> None:
        self._subscriptions[subscriber] = {}
        self._query_set_versions[subscriber] = 0

    def disconnect(self, subscriber: Subscriber) -> None:
        for query_id in list(self._subscriptions.get(subscriber, {})):
            self._unsubscribe(subscriber, query_id)
        self._subscriptions.pop(subscriber, None)
        self._query_set_versions.pop(subscriber, None)
        self._requests = [(s, r) for s, r in self._requests if s is not subscriber]

    def modify(self, subscriber: Subscriber, message: ModifyQuerySet) -> None:
        async def apply(reader: StoreReader, pending: _Pending) -> None:
            current = self._query_set_versions.get(subscriber)
            if current is None:
                return
            if message.base_version != current:
                subscriber.protocol_violation(
                    "InvalidVersion",
                    f"ModifyQuerySet from version {message.base_version}, server has {current}",
                )
                return
            for change in message.modifications:
                if isinstance(change, RemoveQuery):
                    if self._unsubscribe(subscriber, change.query_id):
                        pending.modifications.append(
                            encode_modification(query_removed(change.query_id))
                        )
                else:
                    pending.modifications.append(await self._subscribe(reader, subscriber, change))
            self._query_set_versions[subscriber] = message.new_version
            pending.query_set = message.new_version
            pending.wants_transition = True

        self._request(subscriber, apply)

    def authenticate(self, subscriber: Subscriber, identity: Identity | None, version: int) -> None:
        """Switch the connection to ``identity`` and re-run its queries under it."""

        async def apply(reader: StoreReader, pending: _Pending) -> None:
            if pending.identity_version is not None:
                # Two identity changes in one round: each needs its own Transition.
                subscriber.emit(
                    pending.modifications,
                    ts=reader.snapshot_ts,
                    query_set=pending.query_set,
                    identity_version=pending.identity_version,
                )
                pending.modifications = []
                pending.query_set = None
            subscriber.identity = identity
            for query_id, shared in list(self._subscriptions.get(subscriber, {}).items()):
                self._unsubscribe(subscriber, query_id)
                add = AddQuery(query_id, shared.function.path or "", shared.args, shared.journal)
                pending.modifications.append(await self._subscribe(reader, subscriber, add))
            pending.identity_version = version
            pending.wants_transition = True

        self._request(subscriber, apply)

    def transition_after(self, subscriber: Subscriber, ts: int) -> None:
        """Send the connection a Transition at or past ``ts`` (after its mutation commits)."""

        async def apply(_reader: StoreReader, pending: _Pending) -> None:
            pending.min_ts = max(ts, pending.min_ts or 0)
            pending.wants_transition = True

        self._request(subscriber, apply)

    def _request(
        self, subscriber: Subscriber, apply: Callable[[StoreReader, _Pending], Any]
    ) -> None:
        self._requests.append((subscriber, apply))
        self.wake()

    # ---- subscriptions -----------------------------------------------------------------

    async def _subscribe(self, reader: StoreReader, subscriber: Subscriber, add: AddQuery) -> str:
        existing = self._subscriptions[subscriber]
        if add.query_id in existing:
            self._unsubscribe(subscriber, add.query_id)
        if len(existing) >= subscriber.max_queries:
            return _failed(
                add.query_id,
                ConvexError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"a connection may subscribe to at most {subscriber.max_queries} queries",
                ),
            )
        try:
            function = self.engine.resolve(
                add.udf_path, FunctionKind.QUERY, internal=is_admin(subscriber.identity)
            )
        except ConvexError as error:
            return _failed(add.query_id, error)
        assert function.path is not None
        args_text = dumps(to_json(add.args))
        identity = subscriber.identity
        shared = self._find(function.path, args_text, identity, add.journal)
        if shared is None:
            outcome = await self._run(reader, function, add.args, identity, add.journal)
            journal = outcome.journal if outcome.journal is not None else add.journal
            # The run may have fixed a journal (a first page): share with a query that runs
            # with that same journal now, if there is one; it is up to date at this snapshot.
            shared = self._find(function.path, args_text, identity, journal)
            if shared is None:
                shared = SharedQuery(None, function, add.args, identity, add.journal, args_text)
                shared.apply(outcome)
                self._file(shared, used_auth=outcome.used_auth)
                self._live.add(shared)
                self._index.set(shared, outcome.read_set)
        shared.subscribers.setdefault(subscriber, set()).add(add.query_id)
        existing[add.query_id] = shared
        return shared.modification(add.query_id)

    def _find(
        self, path: str, args_text: str, identity: Identity | None, journal: str | None
    ) -> SharedQuery | None:
        """A live query that is this query (anonymous, or this identity's own)."""
        anonymous: QueryKey = (path, args_text, None, journal)
        if identity is None:
            return self._queries.get(anonymous)
        personal: QueryKey = (path, args_text, _who(identity), journal)
        return self._queries.get(anonymous) or self._queries.get(personal)

    def _file(self, shared: SharedQuery, *, used_auth: bool) -> None:
        """File ``shared`` under its effective query (it moves when its journal changes)."""
        assert shared.function.path is not None
        identity = shared.identity
        key: QueryKey = (
            shared.function.path,
            shared.args_text,
            _who(identity) if used_auth else None,
            shared.journal,
        )
        if shared.key == key:
            return
        if shared.key is not None and self._queries.get(shared.key) is shared:
            del self._queries[shared.key]
        # Two live queries can come to run with the same journal (rare): the second is then
        # kept for its own subscribers but offered to nobody new.
        shared.key = None if key in self._queries else key
        if shared.key is not None:
            self._queries[key] = shared

    def _unsubscribe(self, subscriber: Subscriber, query_id: int) -> bool:
        shared = self._subscriptions.get(subscriber, {}).pop(query_id, None)
        if shared is None:
            return False
        ids = shared.subscribers.get(subscriber)
        if ids is not None:
            ids.discard(query_id)
            if not ids:
                del shared.subscribers[subscriber]
        if not shared.subscribers:
            if shared.key is not None and self._queries.get(shared.key) is shared:
                del self._queries[shared.key]
            self._live.discard(shared)
            self._index.discard(shared)
        return True

    async def _run(
        self,
        reader: StoreReader,
        function: RegisteredFunction[Any, Any, Any],
        args: dict[str, Any],
        identity: Identity | None,
        journal: str | None,
    ) -> QueryOutcome:
        self.executions += 1
        return await self.engine.subscribe_at(reader, function, args, identity, journal=journal)

    # ---- rounds ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.run_round()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable:  # logged once per outage by the store
                await self.engine.runtime.timers.sleep(0.5)
                self.wake()
            except Exception:
                log.exception("sync round failed; retrying shortly")
                await self.engine.runtime.timers.sleep(0.5)
                self.wake()

    async def _catch_up(self) -> None:
        """A missed notification delays an update by at most this interval, never loses it."""
        while True:
            await self.engine.runtime.timers.sleep(self.catch_up_interval)
            if self._live or self._requests:
                self.wake()

    async def run_round(self) -> None:
        full, self._full = self._full, False
        if not full and not self._requests and self._skip_round():
            return
        requests, self._requests = self._requests, []
        pending: dict[Subscriber, _Pending] = {}
        opened = False
        try:
            async with self.engine.store.snapshot() as reader:
                opened = True
                ts = reader.snapshot_ts
                await self._process_commits(reader, pending)
                for subscriber, apply in requests:
                    if subscriber in self._subscriptions:
                        await apply(reader, pending.setdefault(subscriber, _Pending()))
        except BaseException:
            if not opened:  # nothing was applied: every request goes round again
                self._requests = requests + self._requests
            else:  # part-applied: what these connections were owed is lost, so they start over
                for subscriber in {*pending, *(s for s, _ in requests)}:
                    if subscriber in self._subscriptions:
                        subscriber.protocol_violation(
                            "InternalServerError", "a sync round failed part-way"
                        )
            raise
        self.rounds += 1
        for emitted, (subscriber, owed) in enumerate(pending.items()):
            if emitted % 64 == 63:
                # Let the first sessions' senders write while the rest are being built: with
                # a thousand subscribers, the first no longer waits for the last to be queued.
                await asyncio.sleep(0)
            if owed.min_ts is not None and owed.min_ts > ts:
                self.transition_after(subscriber, owed.min_ts)  # not visible yet: next round
                owed.wants_transition = bool(owed.modifications) or owed.query_set is not None
            if owed.wants_transition or owed.modifications:
                subscriber.emit(
                    owed.modifications,
                    ts=ts,
                    query_set=owed.query_set,
                    identity_version=owed.identity_version,
                )

    def _skip_round(self) -> bool:
        """When only this process's commits woke the round, and the committer knows every
        commit since the last round and none of them touches a live query, the round has
        nothing to send: move on without a snapshot."""
        after = self._processed_ts
        store = self.engine.store
        through = store.recent.through
        if after is None or through is None:
            return False
        known = store.write_sets_between(after, through)
        if known is None:
            return False
        if self._live and known and self._index.affected(WriteSet.union(known)):
            return False
        self._processed_ts = max(after, through)
        self.skipped += 1
        return True

    async def _process_commits(
        self, reader: StoreReader, pending: dict[Subscriber, _Pending]
    ) -> None:
        after = self._processed_ts if self._processed_ts is not None else reader.snapshot_ts
        if not self._live or reader.snapshot_ts <= after:
            self._processed_ts = max(after, reader.snapshot_ts)
            return
        # the write sets this process's committer already holds (its own commits, and others'
        # it has read under the lock); the log only for what it does not know
        known = self.engine.store.write_sets_between(after, reader.snapshot_ts)
        if known is None:
            commits = await reader.commits_after(after)
            known = [WriteSet.from_json(c.write_set_json) for c in commits]
        if not known:
            self._processed_ts = max(after, reader.snapshot_ts)
            return
        writes = WriteSet.union(known)
        # a changed environment variable: the re-runs below read it as of this snapshot
        await self.engine.environment.observe(writes, reader)
        for shared in self._index.affected(writes):
            outcome = await self._run(
                reader, shared.function, shared.args, shared.identity, shared.journal
            )
            self._index.set(shared, outcome.read_set)
            changed = shared.apply(outcome)
            self._file(shared, used_auth=outcome.used_auth)
            if outcome.used_auth:
                await self._split_strangers(reader, shared, pending)
            if changed:
                for subscriber, query_ids in shared.subscribers.items():
                    owed = pending.setdefault(subscriber, _Pending())
                    owed.modifications.extend(shared.modification(q) for q in sorted(query_ids))
        # only now: a round that fails part-way leaves these commits to the next one
        self._processed_ts = max(after, reader.snapshot_ts)

    async def _split_strangers(
        self, reader: StoreReader, shared: SharedQuery, pending: dict[Subscriber, _Pending]
    ) -> None:
        """A query shared while it ignored ``ctx.auth`` has just read it: its result is now its
        first subscriber's own. Everyone else subscribed to it gets a run of their own."""
        owner = _who(shared.identity)
        strangers = [
            (subscriber, sorted(ids))
            for subscriber, ids in shared.subscribers.items()
            if _who(subscriber.identity) != owner
        ]
        path = shared.function.path or ""
        for subscriber, query_ids in strangers:
            owed = pending.setdefault(subscriber, _Pending())
            for query_id in query_ids:
                self._unsubscribe(subscriber, query_id)
                add = AddQuery(query_id, path, shared.args, shared.journal)
                owed.modifications.append(await self._subscribe(reader, subscriber, add))


def _who(identity: Identity | None) -> tuple[str, str | None] | None:
    return (identity.subject, identity.session_id) if identity is not None else None


def _failed(query_id: int, error: ConvexError) -> str:
    data = to_json(error.data)
    return encode_modification(query_failed(query_id, error_message_for(data), data))


__all__ = ["FunctionFailed", "SharedQuery", "Subscriber", "SyncCoordinator"]
