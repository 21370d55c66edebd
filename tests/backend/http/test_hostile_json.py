"""JSON built to break the parser, at every JSON endpoint and on the socket: a coded refusal,
never a 500, a "Server Error" or a traceback in the log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed

from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import ws_url

# Each under the auth endpoints' 64 KB body limit, so that the parser is what refuses it.
HOSTILE = {
    "deeply nested": b"[" * 20_000 + b"]" * 20_000,
    "deeply nested, unclosed": b"[" * 40_000,
    "deeply nested objects": b'{"a":' * 8_000 + b"1" + b"}" * 8_000,
    "a lone surrogate": b'{"email": "\\ud800@example.com", "password": "x", "path": "\\ud800"}',
    "a lone surrogate in a key": b'{"\\udfff": 1}',
    "a lone surrogate in args": b'{"path": "counters:get", "args": [{"name": "\\udbff"}]}',
    "NaN": b'{"path": "counters:get", "args": [{"name": NaN}]}',
    "Infinity": b'{"path": "counters:get", "args": [{"name": -Infinity}]}',
    "an overflowing number": b'{"path": "counters:get", "args": [{"name": 1e400}]}',
    "an overflowing integer": b'{"path": "counters:get", "args": [{"name": ' + b"9" * 400 + b"}]}",
    "a duplicate key": b'{"path": "counters:get", "path": "counters:create", "args": [{}]}',
    "UTF-16": '{"path": "counters:get"}'.encode("utf-16"),
}


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server(None) as live:
        yield live


def json_endpoints(server: LiveServer) -> list[str]:
    """Every POST route of the app: each one reads a JSON body (or none)."""
    paths = [
        route.path.replace("{kind:str}", kind)
        for route in server.app.routes
        if isinstance(route, Route) and "POST" in (route.methods or ())
        for kind in (("query", "mutation", "action") if "{kind:str}" in route.path else ("",))
    ]
    assert {"/api/query", "/api/mutation", "/api/action", "/api/auth/sign-in/email"} <= set(paths)
    return paths


READS_NO_BODY = {"/api/auth/sign-out", "/api/auth/revoke-other-sessions"}
# Its body is a file, whatever its bytes: without a valid upload token it is never read.
FILE_BODIES = {"/api/storage/upload"}


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage()[:200] for r in bad]


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_json_at_every_endpoint_is_a_coded_400(
    server: LiveServer, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for path in json_endpoints(server):
            response = await http.post(
                path,
                content=HOSTILE[name],
                headers={"content-type": "application/json", "origin": server.url},
            )
            if path in READS_NO_BODY:  # nothing to refuse; answered as without a body
                assert response.status_code in (200, 401), response.text
                continue
            body = response.json()
            if path in FILE_BODIES:
                assert (response.status_code, body["code"]) == (401, "INVALID_TOKEN"), body
                continue
            if "overflowing" in name and path.startswith("/api/auth/"):
                # valid JSON, refused where a function's argument is decoded; an auth body
                # is plain JSON, answered as a field of the wrong kind would be
                assert 400 <= response.status_code < 500, (path, response.text[:200])
                assert body["code"], (path, body)
                continue
            assert response.status_code == 400, (path, response.status_code, response.text[:200])
            assert body["code"] == "INVALID_ARGUMENT", (path, body)
    no_tracebacks(caplog)


# Mutation frames, each valid but for one thing only the strict decoder refuses.
MUTATION = '{"type":"Mutation","requestId":0,"udfPath":"counters:create","args":[{"name":%s}]}'
HOSTILE_FRAMES: dict[str, str | bytes] = {
    "deeply nested": MUTATION % ("[" * 40_000 + "]" * 40_000),
    "deeply nested objects": MUTATION % ('{"a":' * 20_000 + "1" + "}" * 20_000),
    "a lone surrogate": MUTATION % '"\\ud800"',
    "a lone surrogate in a key": MUTATION.replace('"name"', '"\\udfff"') % '"x"',
    "NaN": MUTATION % "NaN",
    "Infinity": MUTATION % "-Infinity",
    "an overflowing number": MUTATION % "1e400",
    "an overflowing integer": MUTATION % ("9" * 400),
    "a duplicate key": MUTATION.replace('"requestId":0', '"requestId":0,"requestId":1') % '"x"',
    "UTF-16": (MUTATION % '"x"').encode("utf-16"),
}
CONNECT = json.dumps(
    {"type": "Connect", "sessionId": "s", "connectionCount": 0, "lastCloseReason": None}
)


@pytest.mark.parametrize("name", sorted(HOSTILE_FRAMES))
async def test_hostile_json_on_the_socket_is_a_coded_close(
    server: LiveServer, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.INFO)
    async with websockets.connect(ws_url(server.url), compression=None) as socket:
        await socket.send(CONNECT)
        await socket.send(HOSTILE_FRAMES[name])
        received: list[str] = []

        async def read_until_closed() -> None:
            async with asyncio.timeout(15):
                while True:
                    received.append(json.loads(await socket.recv())["type"])

        with pytest.raises(ConnectionClosed) as closed:
            await read_until_closed()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4400, closed.value.rcvd
        expected = "InvalidArgs" if "overflowing" in name else "MalformedMessage"
        assert closed.value.rcvd.reason == expected, closed.value.rcvd
        assert "MutationResponse" not in received  # the mutation never ran
    no_tracebacks(caplog)
