"""Stored mutation outcomes over a real socket: they answer only the caller who made them, and
sessionIds up to the protocol's limit work on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import Account, close_of, sign_up, sync_socket, ws_url

VICTIM_SESSION = "3f1c2a9e-6b7d-4e2f-9a51-0c8d7e6f5a4b"


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as live:
        yield live


@pytest.fixture
async def accounts(server: LiveServer) -> AsyncIterator[tuple[Account, Account]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield await sign_up(http, "victim@example.com"), await sign_up(http, "mallory@example.com")


async def counter(server: LiveServer, name: str) -> object:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            "/api/query", json={"path": "counters:get", "args": [{"name": name}]}
        )
        return response.json()["value"]


async def test_reusing_a_victims_session_id_never_replays_the_victims_outcome(
    server: LiveServer, accounts: tuple[Account, Account]
) -> None:
    victim, mallory = accounts
    async with sync_socket(server.url, VICTIM_SESSION, token=victim.convex_token) as socket:
        first = await socket.call(
            "Mutation", "protected:unprotected", {"name": "victim"}, request_id=0
        )
        assert first["success"], first
        assert first["result"] == 1

    # Another user, and then nobody at all, send the same (sessionId, requestId).
    for token in (mallory.convex_token, None):
        async with sync_socket(server.url, VICTIM_SESSION, token=token) as socket:
            reuse = await socket.call(
                "Mutation", "protected:unprotected", {"name": "mallory"}, request_id=0
            )
            assert not reuse["success"], reuse
            assert reuse["errorData"]["code"] == "FORBIDDEN", reuse
            assert "ts" not in reuse
            # the session is still usable for the caller's own, new requests
            if token is not None:
                own = await socket.call(
                    "Mutation", "protected:unprotected", {"name": "mallory"}, request_id=1
                )
                assert own["success"], own
                assert own["result"] == 1

    # The victim's own resend is still answered from the stored outcome, without running again.
    async with sync_socket(server.url, VICTIM_SESSION, token=victim.convex_token) as socket:
        again = await socket.call(
            "Mutation", "protected:unprotected", {"name": "victim"}, request_id=0
        )
        assert again == first
    assert (await counter(server, "victim"))["value"] == 1  # type: ignore[index]
    assert (await counter(server, "mallory"))["value"] == 1  # type: ignore[index]


async def test_a_step_up_answer_is_not_replayed_to_another_user(
    server: LiveServer, accounts: tuple[Account, Account]
) -> None:
    victim, mallory = accounts
    verify = {"action": "thing.look", "resource": "x", "password": "correct horse battery"}
    async with sync_socket(server.url, VICTIM_SESSION, token=victim.convex_token) as socket:
        first = await socket.call("Mutation", "sensitive:verifyPassword", verify, request_id=7)
        assert first["success"], first
        assert first["result"]["ok"], first
    async with sync_socket(server.url, VICTIM_SESSION, token=mallory.convex_token) as socket:
        reuse = await socket.call(
            "Mutation", "sensitive:verifyPassword", {**verify, "password": "wrong"}, request_id=7
        )
        assert reuse["errorData"]["code"] == "FORBIDDEN", reuse
    async with sync_socket(server.url, VICTIM_SESSION, token=victim.convex_token) as socket:
        again = await socket.call("Mutation", "sensitive:verifyPassword", verify, request_id=7)
        assert again == first


async def test_a_session_id_at_the_protocols_limit_works_and_one_past_it_is_refused(
    server: LiveServer,
) -> None:
    longest = "s" * 128
    async with sync_socket(server.url, longest) as socket:
        response = await socket.call("Mutation", "counters:create", {"name": "long"}, request_id=0)
        assert response["success"], response
        again = await socket.call("Mutation", "counters:create", {"name": "long"}, request_id=0)
        assert again == response  # remembered under the whole 128-character id
    async with websockets.connect(ws_url(server.url), compression=None) as raw:
        await raw.send(
            '{"type":"Connect","sessionId":"' + "s" * 129 + '","connectionCount":0,'
            '"lastCloseReason":null}'
        )
        close = await close_of(raw)
        assert (close.code, close.reason) == (4400, "MalformedMessage")
