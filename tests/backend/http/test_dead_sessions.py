"""A signed-out session is nobody in actions too, over real HTTP and a real WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import sign_out, sign_up, sync_socket


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def http_action(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await http.post(
        "/api/action",
        json={"path": "whoami:in_action", "args": [{}]},
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["value"])


async def test_an_action_over_http_after_sign_out_sees_nobody(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    ada = await sign_up(http, "ada@example.com")
    assert await http_action(http, ada.convex_token) == {
        "action": ada.user_id,
        "query": ada.user_id,
        "mutation": ada.user_id,
    }
    await sign_out(http, ada)
    # The Convex token is still unexpired; the session behind it is gone.
    assert await http_action(http, ada.convex_token) == {
        "action": None,
        "query": None,
        "mutation": None,
    }


async def test_an_action_over_the_socket_after_sign_out_sees_nobody(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    ada = await sign_up(http, "ada@example.com")
    async with sync_socket(server.url, token=ada.convex_token) as socket:
        before = await socket.call("Action", "whoami:in_action")
        assert before["success"], before
        assert before["result"]["action"] == ada.user_id
        await sign_out(http, ada)
        after = await socket.call("Action", "whoami:in_action")
        assert after["success"], after
        assert after["result"] == {"action": None, "query": None, "mutation": None}
