"""The sync endpoint over a real socket: its paths, any Origin, and frames the protocol refuses;
and the CORS policy beside it (open on the token-only function API, closed on the cookie
endpoints)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

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


def ws_url(server: LiveServer, version: str | None = "1.48.0", prefix: str = "") -> str:
    path = "/api/sync" if version is None else f"/api/{version}/sync"
    return server.url.replace("http://", "ws://") + prefix + path


async def first_transition(url: str, origin: str | None) -> dict[str, Any]:
    async with websockets.connect(url, origin=origin, compression=None) as socket:  # type: ignore[arg-type]
        await socket.send(CONNECT)
        await socket.send(SUBSCRIBE)
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "Transition":
                return dict(message)


@pytest.mark.parametrize(
    "origin", [None, "same", "https://app.example", "http://localhost:5173", "https://evil.example"]
)
async def test_any_origin_connects_because_the_socket_reads_no_cookie(
    server: LiveServer, origin: str | None
) -> None:
    chosen = server.url if origin == "same" else origin
    transition = await first_transition(ws_url(server), chosen)
    end = transition["endVersion"]
    assert (end["querySet"], end["identity"]) == (1, 0)
    assert transition["modifications"][0]["type"] == "QueryUpdated"


async def test_any_client_version_no_version_and_a_doubled_slash_are_accepted(
    server: LiveServer,
) -> None:
    await first_transition(ws_url(server, version="9.9.9"), None)
    await first_transition(ws_url(server, version=None), None)  # the Rust-based clients
    await first_transition(ws_url(server, prefix="/"), None)


async def test_a_cookie_on_a_cross_site_socket_confers_no_identity(server: LiveServer) -> None:
    # What cross-site WebSocket hijacking would exploit: a browser attaches the victim's
    # session cookie to a socket a hostile page opens. The socket never reads it.
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/api/auth/sign-up/email",
            json={"email": "victim@example.com", "password": "correct horse battery", "name": "V"},
        )
        assert response.status_code == 200
        cookie = response.headers["set-cookie"].split(";")[0]
    whoami = json.dumps(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [
                {"type": "Add", "queryId": 0, "udfPath": "notes:whoami", "args": [{}]}
            ],
        }
    )
    async with websockets.connect(
        ws_url(server),
        origin="https://evil.example",  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        compression=None,
    ) as socket:
        await socket.send(CONNECT)
        await socket.send(whoami)
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "Transition":
                break
    assert message["modifications"][0]["value"] is None


async def test_the_function_api_answers_any_origin_without_credentials(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        preflight = await http.options(
            "/api/query",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,convex-client,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers
        answer = await http.post(
            "/api/query",
            headers={"Origin": "http://localhost:5173"},
            json={"path": "counters:get", "args": {"name": "x"}, "format": "convex_encoded_json"},
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "*"


async def test_the_cookie_endpoints_keep_cors_to_the_configured_origins(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for origin, allowed in [("https://app.example", True), ("http://localhost:5173", False)]:
            preflight = await http.options(
                "/api/auth/sign-in/email",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            if allowed:
                assert preflight.headers["access-control-allow-origin"] == origin
                assert preflight.headers["access-control-allow-credentials"] == "true"
            else:
                assert preflight.status_code == 400
                assert "access-control-allow-origin" not in preflight.headers


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
