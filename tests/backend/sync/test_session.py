"""A sync session and the coordinator, driven through an in-memory transport.

These pin the protocol's state machine without sockets; client_js/test drives the same code
with the official Convex client over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.sync.coordinator import SyncCoordinator
from backend.sync.identity import TokenRejected, VerifiedToken
from backend.sync.protocol import decode_ts
from backend.sync.session import SessionLimits, SyncSession
from backend.testing import TestBackend
from backend.udf.app import App
from backend.udf.context import Identity
from tests.conftest import basic_app


class QueueTransport:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: tuple[int, str] | None = None

    async def receive(self) -> str | bytes | None:
        return await self.inbox.get()

    async def send(self, text: str) -> None:
        await self.sent.put(json.loads(text))

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.inbox.put_nowait(None)  # as a socket does: the peer's side ends too

    def push(self, message: dict[str, Any] | str) -> None:
        self.inbox.put_nowait(message if isinstance(message, str) else json.dumps(message))

    async def next(self, kind: str | None = None, wait: float = 5) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.sent.get(), wait)
            if kind is None or message["type"] == kind:
                return message
            assert message["type"] == "Ping", f"expected {kind}, got {message}"


class StaticVerifier:
    async def verify(self, token: str) -> VerifiedToken:
        if not token.startswith("good:"):
            raise TokenRejected("bad signature")
        _, user_id, session_id = token.split(":")
        return VerifiedToken(Identity(subject=user_id, session_id=session_id), None)


class Harness:
    def __init__(self, t: TestBackend, coordinator: SyncCoordinator) -> None:
        self.t = t
        self.coordinator = coordinator
        self.tasks: list[asyncio.Task[None]] = []

    def connect(self, session_id: str = "session-1", **limits: Any) -> QueueTransport:
        transport = QueueTransport()
        session = SyncSession(
            transport,
            self.t.engine,
            self.coordinator,
            verifier=StaticVerifier(),
            limits=SessionLimits(**limits),
        )
        self.tasks.append(asyncio.create_task(session.run()))
        transport.push(
            {
                "type": "Connect",
                "sessionId": session_id,
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
                "clientTs": 0,
            }
        )
        return transport


@contextlib.asynccontextmanager
async def sync_harness(database_url: str | None, app: App) -> AsyncIterator[Harness]:
    """A backend serving ``app`` with a running coordinator, and sessions to connect to it;
    every session and the coordinator are stopped at the end."""
    async with TestBackend(database_url, app=app) as t:
        coordinator = SyncCoordinator(t.engine, catch_up_interval=0.2)
        await coordinator.start()
        harness = Harness(t, coordinator)
        try:
            yield harness
        finally:
            for task in harness.tasks:
                task.cancel()
            await asyncio.gather(*harness.tasks, return_exceptions=True)
            await coordinator.stop()


@pytest.fixture
async def sync(database_url: str | None) -> AsyncIterator[Harness]:
    async with sync_harness(database_url, basic_app()) as harness:
        yield harness


def add(query_id: int, path: str, args: dict[str, Any], base: int) -> dict[str, Any]:
    return {
        "type": "ModifyQuerySet",
        "baseVersion": base,
        "newVersion": base + 1,
        "modifications": [{"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}],
    }


def mutation(request_id: int, path: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]}


INITIAL = {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}


async def test_subscribe_then_mutate_pushes_the_new_result_after_the_response(
    sync: Harness,
) -> None:
    client = sync.connect()
    client.push(add(0, "counters:get", {"name": "c"}, 0))
    first = await client.next("Transition")
    assert first["startVersion"] == INITIAL
    assert first["endVersion"]["querySet"] == 1
    assert first["modifications"] == [
        {"type": "QueryUpdated", "queryId": 0, "value": None, "logLines": [], "journal": None}
    ]
    client.push(mutation(0, "counters:create", {"name": "c"}))
    response = await client.next("MutationResponse")
    assert response["success"] is True
    transition = await client.next("Transition")
    assert transition["startVersion"] == first["endVersion"]
    assert decode_ts(transition["endVersion"]["ts"]) >= decode_ts(response["ts"])
    (update,) = transition["modifications"]
    assert update["value"]["name"] == "c"
    assert update["value"]["value"] == 0


async def test_identical_subscriptions_run_once_per_commit_and_others_are_untouched(
    sync: Harness,
) -> None:
    await sync.t.mutation("counters:create", {"name": "c"})
    await sync.t.mutation("counters:create", {"name": "other"})
    clients = [sync.connect(f"s{i}") for i in range(5)]
    for client in clients:
        client.push(add(7, "counters:get", {"name": "c"}, 0))
        await client.next("Transition")
    bystander = sync.connect("bystander")
    bystander.push(add(1, "counters:get", {"name": "other"}, 0))
    await bystander.next("Transition")
    assert sync.coordinator.query_count == 2
    before = sync.coordinator.executions
    await sync.t.mutation("counters:increment", {"name": "c"})
    for client in clients:
        transition = await client.next("Transition")
        assert transition["modifications"][0]["value"]["value"] == 1
    assert sync.coordinator.executions == before + 1
    with pytest.raises(TimeoutError):
        await bystander.next("Transition", wait=0.5)


async def test_a_resent_mutation_on_a_new_socket_is_answered_not_rerun(sync: Harness) -> None:
    await sync.t.mutation("counters:create", {"name": "c"})
    first = sync.connect("same-session")
    first.push(mutation(4, "counters:increment", {"name": "c"}))
    original = await first.next("MutationResponse")
    second = sync.connect("same-session")
    second.push(mutation(4, "counters:increment", {"name": "c"}))
    replay = await second.next("MutationResponse")
    assert replay == original
    assert (await sync.t.query("counters:get", {"name": "c"}))["value"] == 1
    await second.next("Transition")


async def test_errors_carry_convex_error_data_only_for_convex_errors(sync: Harness) -> None:
    client = sync.connect()
    client.push(mutation(0, "counters:increment", {"name": "missing"}))
    failed = await client.next("MutationResponse")
    assert failed["success"] is False
    assert failed["errorData"]["code"] == "NOT_FOUND"
    assert failed["result"].startswith("Uncaught ConvexError: ")
    assert "ts" not in failed
    await client.next("Transition")
    client.push(mutation(1, "counters:crash", {}))
    crashed = await client.next("MutationResponse")
    assert "errorData" not in crashed
    assert crashed["result"].startswith("Server Error")
    await client.next("Transition")
    client.push(add(0, "counters:nope", {}, 0))
    transition = await client.next("Transition")
    assert transition["modifications"][0]["type"] == "QueryFailed"
    assert transition["modifications"][0]["errorData"]["code"] == "NOT_FOUND"


async def test_a_failed_mutation_is_followed_by_a_transition_at_or_past_the_latest_commit(
    sync: Harness,
) -> None:
    # The Rust client (and so the Python one) settles a mutation that failed with a ConvexError
    # only when a Transition arrives after its response; without one it waits forever.
    client = sync.connect()
    client.push(mutation(0, "counters:create", {"name": "c"}))
    created = await client.next("MutationResponse")
    first = await client.next("Transition")
    client.push(mutation(1, "counters:increment_then_fail", {"name": "c"}))
    failed = await client.next("MutationResponse")
    assert failed["success"] is False
    assert failed["errorData"]["code"] == "BOOM"
    after = await client.next("Transition")
    assert after["startVersion"] == first["endVersion"]
    assert after["modifications"] == []
    assert decode_ts(after["endVersion"]["ts"]) >= decode_ts(created["ts"])


async def test_authenticate_reruns_queries_under_the_new_identity(sync: Harness) -> None:
    alice = await sync.t.sign_up("alice@example.com", "correct horse battery")
    client = sync.connect()
    client.push(add(0, "notes:whoami", {}, 0))
    assert (await client.next("Transition"))["modifications"][0]["value"] is None
    token = f"good:{alice.user_id}:{alice.session_id}"
    client.push({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0})
    transition = await client.next("Transition")
    assert transition["endVersion"]["identity"] == 1
    assert transition["modifications"][0]["value"] == alice.user_id
    client.push({"type": "Authenticate", "tokenType": "None", "baseVersion": 1})
    cleared = await client.next("Transition")
    assert cleared["endVersion"]["identity"] == 2
    assert cleared["modifications"][0]["value"] is None


async def test_a_revoked_session_loses_its_identity_on_live_queries(sync: Harness) -> None:
    alice = await sync.t.sign_up("alice@example.com", "correct horse battery")
    client = sync.connect()
    token = f"good:{alice.user_id}:{alice.session_id}"
    client.push({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0})
    client.push(add(0, "notes:whoami", {}, 0))
    seen = await client.next("Transition")
    assert seen["endVersion"]["identity"] == 1
    assert seen["modifications"][0]["value"] == alice.user_id
    await sync.t.auth.sign_out(alice.token)
    revoked = await client.next("Transition", wait=5.0)
    assert revoked["modifications"][0]["value"] is None


async def test_a_bad_token_gets_auth_error_and_a_close(sync: Harness) -> None:
    client = sync.connect()
    client.push({"type": "Authenticate", "tokenType": "User", "value": "forged", "baseVersion": 0})
    error = await client.next("AuthError")
    assert error == {
        "type": "AuthError",
        "error": "Invalid token: bad signature",
        "baseVersion": 0,
        "authUpdateAttempted": True,
    }
    await asyncio.wait_for(sync.tasks[-1], 5)
    assert client.closed is not None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "MalformedMessage"),
        ('{"type":"Launch"}', "UnknownMessageType"),
        (json.dumps(add(0, "counters:get", {"name": "c"}, 5)), "InvalidVersion"),
        ("x" * 2000, "MessageTooLarge"),
    ],
)
async def test_hostile_frames_close_the_socket_with_a_reason(
    sync: Harness, frame: str, reason: str
) -> None:
    client = sync.connect(max_message_bytes=1000)
    client.push(frame)
    await asyncio.wait_for(sync.tasks[-1], 5)
    assert client.closed is not None
    assert client.closed[1] == reason
    healthy = sync.connect("healthy")
    healthy.push(mutation(0, "counters:create", {"name": "ok"}))
    assert (await healthy.next("MutationResponse"))["success"] is True


async def test_a_message_flood_is_cut_off(sync: Harness) -> None:
    client = sync.connect(messages_per_second=1, message_burst=20)
    for _ in range(50):
        client.push({"type": "Event", "eventType": "ClientConnect", "event": {}})
    await asyncio.wait_for(sync.tasks[-1], 5)
    assert client.closed == (1008, "TooManyConcurrentRequests")


async def test_too_many_subscriptions_fail_the_extra_queries_only(sync: Harness) -> None:
    client = sync.connect(max_queries=2)
    mods = [
        {"type": "Add", "queryId": i, "udfPath": "counters:get", "args": [{"name": str(i)}]}
        for i in range(3)
    ]
    client.push(
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": mods}
    )
    transition = await client.next("Transition")
    kinds = [m["type"] for m in transition["modifications"]]
    assert kinds == ["QueryUpdated", "QueryUpdated", "QueryFailed"]
    assert transition["modifications"][2]["errorData"]["code"] == "LIMIT_EXCEEDED"


async def test_idle_connections_get_pings(sync: Harness) -> None:
    client = sync.connect(ping_after=0.05)
    message = await asyncio.wait_for(client.sent.get(), 2)
    assert message == {"type": "Ping"}


async def test_one_write_among_many_subscriptions_reruns_exactly_one(sync: Harness) -> None:
    async def fill(ctx: Any) -> list[str]:
        return [await ctx.db.insert("counters", {"name": f"n{i}", "value": 0}) for i in range(300)]

    await sync.t.run(fill)
    client = sync.connect(max_queries=1000)
    mods = [
        {"type": "Add", "queryId": i, "udfPath": "counters:get", "args": [{"name": f"n{i}"}]}
        for i in range(300)
    ]
    client.push(
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": mods}
    )
    assert len((await client.next("Transition"))["modifications"]) == 300
    before = sync.coordinator.executions
    await sync.t.mutation("counters:increment", {"name": "n150"})
    transition = await client.next("Transition")
    assert [m["queryId"] for m in transition["modifications"]] == [150]
    assert sync.coordinator.executions == before + 1


async def test_writes_from_another_engine_on_the_same_database_arrive(sync: Harness) -> None:
    """Commits made by someone else (another process) are found in the log by catch-up."""
    client = sync.connect()
    client.push(add(0, "counters:get", {"name": "far"}, 0))
    await client.next("Transition")
    engine = sync.t.engine
    remove = engine._listeners[:]  # a second engine would not notify this coordinator
    engine._listeners.clear()
    try:
        await engine.run_mutation("counters:create", {"name": "far"})
    finally:
        engine._listeners.extend(remove)
    transition = await client.next("Transition", wait=5)
    assert transition["modifications"][0]["value"]["name"] == "far"


async def test_transitions_report_the_client_clock_skew(sync: Harness) -> None:
    transport = QueueTransport()
    session = SyncSession(transport, sync.t.engine, sync.coordinator)
    sync.tasks.append(asyncio.create_task(session.run()))
    client_ms = round(sync.t.engine.runtime.now_ms()) + 5000
    transport.push(
        {"type": "Connect", "sessionId": "skewed", "connectionCount": 0, "clientTs": client_ms}
    )
    transport.push(add(0, "counters:get", {"name": "c"}, 0))
    assert (await transport.next("Transition"))["clientClockSkew"] == 5000


async def test_a_live_page_keeps_its_bounds_when_rows_come_and_go(sync: Harness) -> None:
    async def fill(ctx: Any) -> list[str]:
        return [await ctx.db.insert("notes", {"author": "a", "body": str(i)}) for i in range(6)]

    ids = await sync.t.run(fill)
    client = sync.connect()
    client.push(add(0, "notes:page", {"paginationOpts": {"numItems": 3, "cursor": None}}, 0))
    first = (await client.next("Transition"))["modifications"][0]
    assert [n["body"] for n in first["value"]["page"]] == ["0", "1", "2"]
    assert first["journal"] == first["value"]["continueCursor"]  # the page's end, remembered

    await sync.t.run(lambda ctx: ctx.db.delete(ids[1]))
    update = (await client.next("Transition"))["modifications"][0]
    # Without the journal the page would refill to three rows and overlap the next page.
    assert [n["body"] for n in update["value"]["page"]] == ["0", "2"]
    assert update["value"]["continueCursor"] == first["value"]["continueCursor"]
