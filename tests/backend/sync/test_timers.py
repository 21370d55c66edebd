"""Every timer of a sync connection runs on the injected runtime, so a fake clock drives it:
a token that expires on an open socket, the pings of a quiet one, and the commit listener's
reconnect backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from backend.runtime import FakeClock, Runtime
from backend.storage.store import Store
from backend.sync.coordinator import SyncCoordinator
from backend.sync.identity import VerifiedToken
from backend.sync.session import SessionLimits, SyncSession
from backend.sync.wakeups import PostgresListener
from backend.testing import TestBackend
from backend.udf.context import Identity
from tests.backend.sync.test_session import QueueTransport
from tests.conftest import basic_app


class ExpiringVerifier:
    """Accepts ``user:<id>``; every token expires a minute after it was checked."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def verify(self, token: str) -> VerifiedToken:
        return VerifiedToken(
            Identity(subject=token.split(":")[1]), self.clock.now() + timedelta(minutes=1)
        )


@pytest.fixture
async def backend() -> AsyncIterator[TestBackend]:
    async with TestBackend(app=basic_app()) as t:
        yield t


async def open_session(
    t: TestBackend, *, ping_after: float
) -> tuple[QueueTransport, asyncio.Task[None]]:
    runtime = Runtime(clock=t.clock, timers=t.clock.timers())
    coordinator = SyncCoordinator(t.engine)
    transport = QueueTransport()
    session = SyncSession(
        transport,
        t.engine,
        coordinator,
        verifier=ExpiringVerifier(t.clock),
        runtime=runtime,
        limits=SessionLimits(ping_after=ping_after),
    )
    task = asyncio.create_task(session.run())
    transport.push({"type": "Connect", "sessionId": "s", "connectionCount": 0, "clientTs": 0})
    return transport, task


async def quiet(transport: QueueTransport) -> None:
    """Nothing was sent: give the loop a moment in real time, then look."""
    await asyncio.sleep(0.05)
    assert transport.sent.empty(), transport.sent.get_nowait()


async def test_a_token_that_expires_on_an_open_socket_ends_the_session(
    backend: TestBackend,
) -> None:
    transport, task = await open_session(backend, ping_after=3600)
    transport.push(
        {"type": "Authenticate", "tokenType": "User", "value": "user:u1", "baseVersion": 0}
    )
    await quiet(transport)
    backend.clock.advance(seconds=59)
    await quiet(transport)  # a second before expiry: still signed in
    backend.clock.advance(seconds=2)
    error = await transport.next("AuthError")
    assert (error["error"], error["authUpdateAttempted"]) == ("Token expired", False)
    await asyncio.wait_for(task, 5)
    assert transport.closed == (1000, "AuthError")


async def test_a_new_token_replaces_the_old_ones_expiry(backend: TestBackend) -> None:
    transport, task = await open_session(backend, ping_after=3600)
    transport.push(
        {"type": "Authenticate", "tokenType": "User", "value": "user:u1", "baseVersion": 0}
    )
    await quiet(transport)
    backend.clock.advance(seconds=45)
    transport.push(
        {"type": "Authenticate", "tokenType": "User", "value": "user:u1", "baseVersion": 1}
    )
    await quiet(transport)
    backend.clock.advance(seconds=30)  # past the first token's expiry, not the second's
    await quiet(transport)
    assert not task.done()
    backend.clock.advance(seconds=31)
    assert (await transport.next("AuthError"))["error"] == "Token expired"
    await asyncio.wait_for(task, 5)


async def test_a_quiet_connection_is_pinged_on_the_fake_clock(backend: TestBackend) -> None:
    transport, task = await open_session(backend, ping_after=15)
    await quiet(transport)
    backend.clock.advance(seconds=14)
    await quiet(transport)
    backend.clock.advance(seconds=1)
    assert (await asyncio.wait_for(transport.sent.get(), 5))["type"] == "Ping"
    backend.clock.advance(seconds=15)
    assert (await asyncio.wait_for(transport.sent.get(), 5))["type"] == "Ping"
    transport.inbox.put_nowait(None)
    await asyncio.wait_for(task, 5)


async def test_fake_timers_fire_in_due_order_and_honour_cancel() -> None:
    clock = FakeClock()
    timers = clock.timers()
    fired: list[str] = []
    timers.call_later(2, lambda: fired.append("b"))
    timers.call_later(1, lambda: fired.append("a"))
    timers.call_later(1.5, lambda: fired.append("never")).cancel()
    sleeper = asyncio.create_task(timers.sleep(3))
    await asyncio.sleep(0)  # let it start waiting
    clock.advance(seconds=1.9)
    assert fired == ["a"]
    clock.advance(seconds=0.1)
    assert fired == ["a", "b"]
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(seconds=1)
    await asyncio.wait_for(sleeper, 1)
    assert timers.monotonic() == 3.0


async def test_the_commit_listener_backs_off_on_the_fake_clock_while_postgres_is_away() -> None:
    # a loopback server that takes each connection and drops it at once: the listener's
    # every attempt fails, and its retries must wait on the runtime's timers, not real time
    attempts: list[float] = []
    attempted = asyncio.Condition()

    async def drop(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.append(timers.monotonic())
        writer.close()
        async with attempted:
            attempted.notify_all()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = FakeClock()
    timers = clock.timers()
    store = Store(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test")
    listener = PostgresListener(store, lambda: None, timers)
    listener.start()
    try:

        async def attempts_reach(n: int) -> None:
            async with attempted:
                await attempted.wait_for(lambda: len(attempts) >= n)

        async def backing_off() -> None:  # the listener has set its timer: the clock may move
            for _ in range(1000):
                if timers.waiting():
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the listener set no timer")

        await asyncio.wait_for(attempts_reach(1), 10)
        await backing_off()
        await asyncio.sleep(0.8)  # past the first backoff in real time: no second attempt...
        assert len(attempts) == 1
        clock.advance(seconds=0.5)  # ...until the fake clock passes it
        await asyncio.wait_for(attempts_reach(2), 10)
        await backing_off()
        clock.advance(seconds=0.9)  # the second waits twice as long
        await asyncio.sleep(0.1)
        assert len(attempts) == 2
        clock.advance(seconds=0.1)
        await asyncio.wait_for(attempts_reach(3), 10)
        assert attempts == [0.0, 0.5, 1.5]
    finally:
        await listener.stop()
        server.close()
        await server.wait_closed()
        await store.close()
