"""A raw-frame client of the sync protocol over a real WebSocket, and HTTP sign-in helpers.

For tests that need to send exactly the frames an attacker would (a chosen ``sessionId``, a
replayed ``requestId``) rather than what the official client sends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

PASSWORD = "correct horse battery"


@dataclass
class Account:
    user_id: str
    session_token: str
    convex_token: str


async def sign_up(http: httpx.AsyncClient, email: str) -> Account:
    """A new user with a session (over ``/api/auth``) and a Convex token for that session."""
    response = await http.post(
        "/api/auth/sign-up/email", json={"email": email, "password": PASSWORD, "name": "Test"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    token = await http.get(
        "/api/auth/convex/token", headers={"authorization": f"Bearer {body['token']}"}
    )
    assert token.status_code == 200, token.text
    return Account(body["user"]["id"], body["token"], token.json()["token"])


async def sign_out(http: httpx.AsyncClient, account: Account) -> None:
    response = await http.post(
        "/api/auth/sign-out", json={}, headers={"authorization": f"Bearer {account.session_token}"}
    )
    assert response.status_code == 200, response.text


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/api/1.48.0/sync"


class SyncSocket:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._next_request = 0
        self._auth_version = 0
        self._query_set = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def connect(self, session_id: str) -> None:
        await self.send(
            {
                "type": "Connect",
                "sessionId": session_id,
                "connectionCount": 0,
                "lastCloseReason": "InitialConnect",
            }
        )

    async def authenticate(self, token: str) -> None:
        await self.send(
            {
                "type": "Authenticate",
                "tokenType": "User",
                "value": token,
                "baseVersion": self._auth_version,
            }
        )
        self._auth_version += 1

    async def subscribe(self, query_id: int, path: str, args: dict[str, Any]) -> None:
        """Add one query to the query set (the next version after the last one added)."""
        await self.send(
            {
                "type": "ModifyQuerySet",
                "baseVersion": self._query_set,
                "newVersion": self._query_set + 1,
                "modifications": [
                    {"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}
                ],
            }
        )
        self._query_set += 1

    async def transition(self) -> dict[str, Any]:
        """The next ``Transition`` (other messages are skipped)."""
        while True:
            message = await self.receive()
            if message["type"] == "Transition":
                return message

    async def receive(self) -> dict[str, Any]:
        return dict(json.loads(await self.socket.recv()))

    async def response(self, kind: str, request_id: int) -> dict[str, Any]:
        """The next ``kind`` response to ``request_id`` (other messages are skipped)."""
        while True:
            message = await self.receive()
            if message["type"] == kind and message.get("requestId") == request_id:
                return message

    async def call(
        self,
        kind: str,
        path: str,
        args: dict[str, Any] | None = None,
        *,
        request_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a ``Mutation`` or ``Action`` and wait for its response."""
        if request_id is None:
            request_id = self._next_request
            self._next_request += 1
        await self.send(
            {"type": kind, "requestId": request_id, "udfPath": path, "args": [args or {}]}
        )
        return await self.response(f"{kind}Response", request_id)


async def close_of(socket: ClientConnection) -> Close:
    """Read until the server closes ``socket`` (within 15 s); the close frame it sent."""
    try:
        async with asyncio.timeout(15):
            while True:
                await socket.recv()
    except ConnectionClosed as closed:
        received = closed.rcvd
    if received is None:
        raise AssertionError("the socket ended without a close frame")
    return received


@asynccontextmanager
async def sync_socket(
    base_url: str, session_id: str = "session-1", *, token: str | None = None
) -> AsyncIterator[SyncSocket]:
    async with websockets.connect(ws_url(base_url), compression=None) as socket:
        client = SyncSocket(socket)
        await client.connect(session_id)
        if token is not None:
            await client.authenticate(token)
        yield client
