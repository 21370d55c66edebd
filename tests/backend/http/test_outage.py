"""The database goes away and comes back, under a live server: callers get a coded
``UNAVAILABLE`` (HTTP 503 with ``Retry-After``; on the socket, an error with that code), the log
says so once when it starts and once when it ends, ``/api/health?ready`` fails meanwhile, nothing
that failed was committed, and everything works again without a restart.

The outage is a TCP proxy between the server and PostgreSQL that the test cuts: the shared
PostgreSQL server itself is never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from backend.storage.store import Store, StoreUnavailable
from tests.conftest import POSTGRES_URL
from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import Account, sign_up, sync_socket
from tests.support.tcp_proxy import TcpProxy, tcp_proxy_to


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    async with tcp_proxy_to(POSTGRES_URL) as proxy:
        yield proxy


@pytest.fixture
async def server(proxy: TcpProxy) -> AsyncIterator[LiveServer]:
    async with live_server(proxy.url_for(POSTGRES_URL)) as live:
        yield live


def bad_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Tracebacks, and errors other than the store's one outage line."""
    return [
        r
        for r in caplog.records
        if r.exc_info or (r.levelno >= logging.ERROR and r.name != "backend.storage")
    ]


async def calls_during_outage(http: httpx.AsyncClient, ada: Account) -> list[httpx.Response]:
    bearer = {"authorization": f"Bearer {ada.convex_token}"}
    session = {"authorization": f"Bearer {ada.session_token}"}
    responses = []
    for _ in range(5):
        responses += [
            await http.post(
                "/api/query", json={"path": "counters:get", "args": [{"name": "c"}]}, headers=bearer
            ),
            await http.post(
                "/api/mutation",
                json={"path": "counters:increment", "args": [{"name": "c"}]},
                headers=bearer,
            ),
            await http.post("/api/action", json={"path": "whoami:in_action", "args": [{}]}),
            await http.get("/api/auth/get-session", headers=session),
            await http.post(
                "/api/auth/sign-in/email",
                json={"email": "ada@example.com", "password": "correct horse battery"},
            ),
        ]
    return responses


async def test_a_database_outage_is_unavailable_to_every_caller_and_logged_once(
    server: LiveServer, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        ada = await sign_up(http, "ada@example.com")
        await http.post("/api/mutation", json={"path": "counters:create", "args": [{"name": "c"}]})
        async with sync_socket(server.url, token=ada.convex_token) as socket:
            await socket.subscribe(0, "counters:get", {"name": "c"})
            first = await socket.transition()
            assert first["modifications"][0]["value"]["value"] == 0
            caplog.set_level(logging.INFO)

            await proxy.cut()
            async with asyncio.timeout(60):  # fail fast: no call waits on the dead database
                responses = await calls_during_outage(http, ada)
                mutation = await socket.call("Mutation", "counters:increment", {"name": "c"})
                action = await socket.call("Action", "whoami:in_action")
                await socket.subscribe(1, "counters:get", {"name": "c"})  # answered later
                health = await http.get("/api/health")
                ready = await http.get("/api/health?ready")

            for response in responses:
                assert response.status_code == 503, (response.request.url, response.text)
                assert response.json()["code"] == "UNAVAILABLE"
                assert int(response.headers["retry-after"]) >= 1
            for failed in (mutation, action):
                assert not failed["success"], failed
                assert failed["errorData"]["code"] == "UNAVAILABLE", failed
            assert health.status_code == 200
            assert health.json()["store"] == "down"
            assert ready.status_code == 503
            assert ready.json()["code"] == "UNAVAILABLE"

            await proxy.restore()
            # no restart: the next calls work, and the socket's queries are answered again
            async with asyncio.timeout(60):
                assert (await http.get("/api/health?ready")).status_code == 200
                late = await socket.transition()
                assert late["endVersion"]["querySet"] == 2
                bumped = await http.post(
                    "/api/mutation", json={"path": "counters:increment", "args": [{"name": "c"}]}
                )
                assert bumped.json()["value"] == 1  # none of the failed increments committed
                while True:
                    update = await socket.transition()
                    values = [m["value"]["value"] for m in update["modifications"]]
                    if values and values[0] == 1:
                        break

    outage = [r for r in caplog.records if r.name == "backend.storage"]
    assert [r.levelno for r in outage] == [logging.ERROR, logging.WARNING], [
        r.getMessage() for r in outage
    ]
    assert "unavailable" in outage[0].getMessage()
    assert "again" in outage[1].getMessage()
    assert not bad_records(caplog), [r.getMessage()[:200] for r in bad_records(caplog)]


async def test_health_reports_the_store(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        health = await http.get("/api/health")
        ready = await http.get("/api/health?ready")
    assert health.json() == {"ok": True, "store": "up"}
    assert ready.status_code == 200


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_database_that_cannot_be_reached_is_store_unavailable(kind: str) -> None:
    url = (
        "sqlite+aiosqlite:////nonexistent/directory/db.sqlite3"
        if kind == "sqlite"
        else "postgresql+asyncpg://postgres@127.0.0.1:1/test"
    )
    store = Store(url)
    before = set(threading.enumerate())
    try:
        for _ in range(3):
            with pytest.raises(StoreUnavailable) as info:
                async with store.snapshot():
                    pass
            assert info.value.code == "UNAVAILABLE"
            with pytest.raises(StoreUnavailable):
                async with store.writer():
                    pass
        assert not store.health.up
        assert not await store.probe()
    finally:
        await store.close()
        # aiosqlite closes the thread of a connection that failed to open without waiting
        # for it: let those threads finish while this loop is still there to hear from them
        for thread in set(threading.enumerate()) - before:
            if "_connection_worker_thread" in thread.name:
                await asyncio.to_thread(thread.join, 10)
