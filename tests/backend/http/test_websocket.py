"""The sync endpoint over a real socket: the Origin check, and frames the protocol refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.live_server import LiveServer, live_server

CONNECT = json.dumps(
    {
        "type": "Connect",
        "sessionId": "s-1",
        "connectionCount": 0,
        "lastCloseReason": "InitialConnect",
    }
)
SUBSCRIBE = json.dumps(
    {
        "type": "ModifyQuerySet",
        "baseVersion": 0,
        "newVersion": 1,
        "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "counters:get", "args": [{"name": "c"}]}
        ],
    }
)


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server(None, allowed_origins=["https://app.example"]) as live:
        yield live


def ws_url(server: LiveServer, version: str = "1.48.0", prefix: str = "") -> str:
    return server.url.replace("http://", "ws://") + f"{prefix}/api/{version}/sync"


async def first_transition(url: str, origin: str | None) -> dict[str, Any]:
    async with websockets.connect(url, origin=origin, compression=None) as socket:  # type: ignore[arg-type]
        await socket.send(CONNECT)
        await socket.send(SUBSCRIBE)
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "Transition":
                return dict(message)


@pytest.mark.parametrize("origin", [None, "same", "https://app.example"])
async def test_same_site_configured_and_non_browser_clients_connect(
    server: LiveServer, origin: str | None
) -> None:
    chosen = server.url if origin == "same" else origin
    transition = await first_transition(ws_url(server), chosen)
    end = transition["endVersion"]
    assert (end["querySet"], end["identity"]) == (1, 0)
    assert transition["modifications"][0]["type"] == "QueryUpdated"


async def test_any_client_version_and_a_doubled_slash_are_accepted(server: LiveServer) -> None:
    await first_transition(ws_url(server, version="9.9.9"), None)
    await first_transition(ws_url(server, prefix="/"), None)


async def test_a_cross_site_origin_is_refused_at_the_upgrade(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        await first_transition(ws_url(server), "https://evil.example")
    assert info.value.response.status_code == 403


async def test_an_oversized_frame_closes_with_a_reason(server: LiveServer) -> None:
    async with websockets.connect(ws_url(server), compression=None, max_size=None) as socket:
        await socket.send(CONNECT)
        await socket.send("x" * (9 * 1024 * 1024))

        async def drain() -> None:
            while True:
                await socket.recv()

        with pytest.raises(ConnectionClosed) as info:
            await drain()
        assert info.value.rcvd is not None
        assert info.value.rcvd.reason == "MessageTooLarge"
    await first_transition(ws_url(server), None)  # the server is fine
