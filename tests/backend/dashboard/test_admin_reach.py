"""Who reaches the dashboard's system functions: only a connection holding the admin key.

The attacker's view first: no token, an ordinary user's token, a forged or near-miss key, an
oversized one, the key over HTTP, a production server without a key, a cross-site fetch of
the dev key, a rebound Host, and state-changing requests to /_dashboard (there are none to
forge: every write goes over the authenticated socket).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from backend.sync.admin import ADMIN, AdminKey, is_admin
from backend.udf.context import Identity
from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import SyncSocket, close_of, sign_up, sync_socket

DEV_KEY = hmac.new(b"live-server-secret", b"dashboard admin key", hashlib.sha256).hexdigest()
PROD_KEY = "p" * 40
TABLES = "_system/dashboard:tables"
INSERT = "_system/dashboard:insertDocument"
RUN = "_system/dashboard:run"


async def admin_auth(client: SyncSocket, key: str) -> None:
    await client.send(
        {"type": "Authenticate", "tokenType": "Admin", "value": key, "baseVersion": 0}
    )


async def query_result(client: SyncSocket, path: str, args: dict[str, Any]) -> dict[str, Any]:
    await client.subscribe(1, path, args)
    while True:
        transition = await client.transition()
        for modification in transition["modifications"]:
            if modification.get("queryId") == 1:
                return dict(modification)


@pytest.fixture
async def dev(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as server:
        yield server


async def notes(server: LiveServer) -> list[Any]:
    async def read(db: Any) -> list[Any]:
        return list(await db.query("notes").collect())

    return await server.engine.system_read(read)


async def test_no_token_reaches_no_dashboard_function(dev: LiveServer) -> None:
    async with sync_socket(dev.url) as client:
        failed = await query_result(client, TABLES, {})
        assert failed["type"] == "QueryFailed"
        assert (
            "Could not find public function for '_system/dashboard:tables'"
            in failed["errorMessage"]
        )
        answer = await client.call(
            "Mutation", INSERT, {"table": "notes", "document": {"author": "x", "body": "y"}}
        )
        assert answer["success"] is False
        assert "Could not find public function" in answer["result"]
        answer = await client.call("Action", RUN, {"path": "notes:add", "args": {}})
        assert answer["success"] is False
    assert await notes(dev) == []


async def test_an_ordinary_users_token_reaches_none_either(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        account = await sign_up(http, "mallory@example.com")
    async with sync_socket(dev.url, token=account.convex_token) as client:
        failed = await query_result(client, TABLES, {})
        assert failed["type"] == "QueryFailed"
        answer = await client.call(
            "Mutation", INSERT, {"table": "notes", "document": {"author": "x", "body": "y"}}
        )
        assert answer["success"] is False
        # nor any internal function of the app
        answer = await client.call("Action", "jobs:side_effect", {"label": "x"})
        assert answer["success"] is False
    assert await notes(dev) == []


@pytest.mark.parametrize(
    "key",
    [
        DEV_KEY[:-1] + ("0" if DEV_KEY[-1] != "0" else "1"),  # one character off
        DEV_KEY[:-1],
        DEV_KEY + "0",
        DEV_KEY.upper(),
        "",
        "live-server-secret",  # the server secret is not the key
        "x" * 100_000,  # oversized
    ],
)
async def test_a_forged_admin_key_ends_the_socket_with_an_auth_error(
    dev: LiveServer, key: str
) -> None:
    async with sync_socket(dev.url) as client:
        await admin_auth(client, key)
        message = await client.receive()
        assert message["type"] == "AuthError"
        assert message["error"] == "Invalid admin key"
        await close_of(client.socket)
    assert await notes(dev) == []


async def test_the_admin_key_reaches_them_and_is_nobody_inside_app_functions(
    dev: LiveServer,
) -> None:
    async with sync_socket(dev.url) as client:
        await admin_auth(client, DEV_KEY)
        answer = await query_result(client, TABLES, {})
        assert answer["type"] == "QueryUpdated"
        assert [t["name"] for t in answer["value"]] == ["counters", "notes"]
        seen = await client.call("Mutation", "whoami:in_mutation", {})
        assert seen["success"] is True
        assert seen["result"] is None  # the admin is no user


async def test_switching_to_a_user_token_drops_the_admin_reach(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        account = await sign_up(http, "ann@example.com")
    async with sync_socket(dev.url) as client:
        await admin_auth(client, DEV_KEY)
        await client.send(
            {
                "type": "Authenticate",
                "tokenType": "User",
                "value": account.convex_token,
                "baseVersion": 1,
            }
        )
        answer = await client.call(
            "Mutation", INSERT, {"table": "notes", "document": {"author": "x", "body": "y"}}
        )
        assert answer["success"] is False
        assert "Could not find public function" in answer["result"]


async def test_the_key_over_http_is_refused_not_trusted(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        for header in (f"Convex {DEV_KEY}", f"Bearer {DEV_KEY}"):
            response = await http.post(
                "/api/query",
                json={"path": TABLES, "args": {}, "format": "json"},
                headers={"authorization": header},
            )
            assert response.status_code in (400, 401, 404), response.text
            assert "counters" not in response.text
        response = await http.post("/api/query", json={"path": TABLES, "args": {}})
        assert "Could not find public function" in response.text


async def test_dev_serves_the_key_to_its_own_pages_only(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        own = await http.get("/_dashboard/key", headers={"sec-fetch-site": "same-origin"})
        assert own.status_code == 200
        assert own.json()["adminKey"] == DEV_KEY
        assert own.headers["cache-control"] == "no-store"
        for site in ("cross-site", "same-site"):
            other = await http.get("/_dashboard/key", headers={"sec-fetch-site": site})
            assert other.status_code == 403
            assert DEV_KEY not in other.text
        rebound = await http.get("/_dashboard/key", headers={"host": "attacker.example"})
        assert rebound.status_code == 400
        assert rebound.json()["code"] == "INVALID_HOST"
        assert DEV_KEY not in rebound.text


async def test_no_state_changing_http_route_under_the_dashboard(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/_dashboard/key", "/_dashboard/", "/_dashboard/anything"):
                response = await http.request(
                    method,
                    path,
                    content=json.dumps({"table": "notes", "document": {"author": "x"}}),
                    headers={"origin": "https://attacker.example", "content-type": "text/plain"},
                )
                assert response.status_code in (404, 405), (method, path, response.status_code)
    assert await notes(dev) == []


async def test_production_without_admin_key_has_no_dashboard_and_takes_no_admin_token(
    database_url: str | None,
) -> None:
    async with live_server(database_url, dev_mode=False) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            for path in (
                "/_dashboard",
                "/_dashboard/",
                "/_dashboard/key",
                "/_dashboard/index.html",
            ):
                response = await http.get(path)
                assert response.status_code == 404, path
        async with sync_socket(server.url) as client:
            await admin_auth(client, DEV_KEY)
            message = await client.receive()
            assert message["type"] == "AuthError"
            assert message["error"] == "Admin tokens are not accepted"
            await close_of(client.socket)


async def test_production_with_admin_key_takes_that_key_only_and_never_serves_it(
    database_url: str | None,
) -> None:
    async with live_server(database_url, dev_mode=False, admin_key=PROD_KEY) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.get("/_dashboard/key", headers={"sec-fetch-site": "same-origin"})
            assert response.status_code == 404
            assert PROD_KEY not in response.text
        async with sync_socket(server.url) as client:
            await admin_auth(client, DEV_KEY)  # the dev key means nothing here
            assert (await client.receive())["type"] == "AuthError"
        async with sync_socket(server.url) as client:
            await admin_auth(client, PROD_KEY)
            answer = await query_result(client, TABLES, {})
            assert answer["type"] == "QueryUpdated"


def test_the_admin_identity_is_that_object_only() -> None:
    assert is_admin(ADMIN)
    lookalike = Identity(subject=ADMIN.subject, issuer=ADMIN.issuer, claims=dict(ADMIN.claims))
    assert lookalike == ADMIN  # equal as a value ...
    assert not is_admin(lookalike)  # ... but no token can make this object
    assert not is_admin(None)


def test_an_admin_key_is_long_and_compared_whole() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        AdminKey("short")
    key = AdminKey(PROD_KEY)
    assert key.matches(PROD_KEY)
    assert not key.matches(PROD_KEY[:-1])
    assert not key.matches(None)
    assert not key.matches("")
    assert not key.matches(PROD_KEY * 100)
