"""One error, the same words on every transport: the HTTP function API and the sync socket
answer a failed call alike, and every HTTP refusal takes its status from the error table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import Route

from backend.errors import ConvexError, ErrorCode
from backend.http.errors import error_response, refused
from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import SyncSocket, close_of, sync_socket, ws_url


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server(None, dev_mode=False) as live:
        yield live


async def _over_http(server: LiveServer, path: str, args: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/mutation", json={"path": path, "args": args})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    return body


async def _over_socket(socket: SyncSocket, path: str, args: dict[str, Any]) -> dict[str, Any]:
    answer = await socket.call("Mutation", path, args)
    assert answer["success"] is False
    return answer


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("counters:increment_then_fail", {"name": "c"}),  # ConvexError with object data
        ("counters:fail_with_text", {"text": "out of stock"}),  # ConvexError with string data
        ("counters:nothing_here", {}),  # no such function: NOT_FOUND
        ("counters:increment", {"name": 7}),  # bad arguments: INVALID_ARGUMENT
        ("counters:crash", {}),  # a bug: "Server Error", and no data at all
    ],
)
async def test_a_failed_call_is_worded_the_same_over_http_and_on_the_socket(
    server: LiveServer, path: str, args: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        created = await client.post(
            "/api/mutation", json={"path": "counters:create", "args": {"name": "c"}}
        )
        assert created.json()["status"] == "success"
    http = await _over_http(server, path, args)
    async with sync_socket(server.url) as socket:
        sync = await _over_socket(socket, path, args)
    assert http["errorMessage"] == sync["result"]
    assert ("errorData" in http) == ("errorData" in sync)
    if "errorData" in sync:  # the HTTP API writes its numbers as floats, as Convex's does
        assert http["errorData"] == sync["errorData"]


async def test_string_data_is_the_message_itself_on_both_transports(server: LiveServer) -> None:
    http = await _over_http(server, "counters:fail_with_text", {"text": "out of stock"})
    assert http["errorMessage"] == "Uncaught ConvexError: out of stock"
    assert http["errorData"] == "out of stock"


async def test_a_refused_token_is_worded_the_same_over_http_and_on_the_socket(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/api/query",
            json={"path": "counters:get", "args": {"name": "c"}},
            headers={"authorization": "Bearer not-a-jwt"},
        )
    assert response.status_code == ErrorCode.UNAUTHENTICATED.status == 401
    assert response.json()["code"] == "UNAUTHENTICATED"
    async with websockets.connect(ws_url(server.url), compression=None) as raw:
        socket = SyncSocket(raw)
        await socket.connect("s-1")
        await socket.authenticate("not-a-jwt")
        refusal = await socket.receive()
        assert refusal["type"] == "AuthError"
        assert refusal["error"] == response.json()["message"] == "Invalid token: malformed"
        assert (await close_of(raw)).reason == "AuthError"


# ---- refusals: one builder, the table's statuses ----------------------------------------------


def _app() -> Starlette:
    async def rate_limited(_request: Any) -> Any:
        return error_response(ConvexError(ErrorCode.RATE_LIMITED, "Slow down", retryAfterMs=2000))

    async def almost(_request: Any) -> Any:
        return error_response(ConvexError(ErrorCode.RATE_LIMITED, "Slow down", retryAfterMs=2001))

    async def app_code(_request: Any) -> Any:
        return error_response(ConvexError("ALREADY_MEMBER", "Already a member", email="a@b.c"))

    async def outage(_request: Any) -> Any:
        return refused(ErrorCode.UNAVAILABLE, "The database is unavailable")

    async def plain(_request: Any) -> Any:
        return error_response(ConvexError.from_data("not an object"))

    return Starlette(
        routes=[
            Route("/limited", rate_limited),
            Route("/almost", almost),
            Route("/app", app_code),
            Route("/outage", outage),
            Route("/plain", plain),
        ]
    )


async def test_every_refusal_takes_its_status_from_the_table_and_says_when_to_come_back() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        limited, almost, app, outage, plain = [
            await http.get(path) for path in ("/limited", "/almost", "/app", "/outage", "/plain")
        ]
    assert limited.status_code == 429
    assert limited.json() == {"code": "RATE_LIMITED", "message": "Slow down", "retryAfterMs": 2000}
    assert limited.headers["retry-after"] == "2"  # whole seconds, rounded up
    assert almost.headers["retry-after"] == "3"
    assert (app.status_code, app.json()) == (
        400,
        {"code": "ALREADY_MEMBER", "message": "Already a member"},
    )
    assert "retry-after" not in app.headers
    assert (outage.status_code, outage.headers["retry-after"]) == (503, "1")
    assert (plain.status_code, plain.json()["code"]) == (400, "ERROR")


@pytest.mark.parametrize("built", [False, True], ids=["no web app", "a built web app"])
async def test_starlettes_own_refusals_are_coded_under_api_and_plain_for_pages(
    tmp_path: Path, built: bool
) -> None:
    """The API's refusals are the same whether or not a web app is built and served at ``/``:
    the web app's catch-all never answers for a path under ``/api``."""
    web = tmp_path / "web"
    if built:
        web.mkdir()
        (web / "index.html").write_text("<!doctype html><title>app</title>")
    async with (
        live_server(None, dev_mode=False, web_dir=str(web)) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        wrong_method = await http.get("/api/query")
        no_route = await http.post("/api/no/such/thing", json={})
        no_get_route = await http.get("/api/no/such/thing")
        page = await http.get("/no/such/page.html")
        home = await http.get("/")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"code": "METHOD_NOT_ALLOWED", "message": "Method Not Allowed"}
    assert wrong_method.headers["allow"] == "POST"
    for missing in (no_route, no_get_route):
        assert missing.status_code == 404
        assert missing.json() == {"code": "NOT_FOUND", "message": "Not Found"}
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/plain")
    assert home.status_code == (200 if built else 404)
    if built:
        assert "<title>app</title>" in home.text
