"""Wire conformance, from recorded sessions: real sessions of the official JS and Python
clients against a real server process, every frame recorded on the server, and every message
the server sent checked against the shapes Convex's Rust client deserializes
(``tests/backend/sync/wire_schema.py``); every message a client sent must parse as well.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from convex import ConvexClient, ConvexError

from backend.sync.protocol import ProtocolError, parse_client_message
from tests.backend.sync.wire_schema import check_server_message
from tests.clients.server import REPO, ServerProcess

pytestmark = pytest.mark.timeout(120)
DRIVER = REPO / "client_js" / "test" / "support" / "drive-session.mjs"


def python_session(server: ServerProcess, channel: str, token: str) -> None:
    client = ConvexClient(server.url)
    updates = client.subscribe("messages:list", {"channel": channel})
    assert next(updates) == []
    client.mutation("messages:send", {"channel": channel, "body": "from python"})
    assert next(updates) == ["from python"]
    calls: list[tuple[Callable[[str, dict[str, Any]], Any], str, dict[str, Any]]] = [
        (client.mutation, "messages:send_then_refuse", {"channel": channel, "body": "no"}),
        (client.query, "messages:refuse", {"channel": channel}),
        (client.query, "messages:nope", {}),
        (client.query, "messages:list", {"channel": 5}),
        (client.action, "messages:refuse_action", {}),
    ]
    for call, name, args in calls:
        with pytest.raises(ConvexError):
            call(name, args)
    with pytest.raises(Exception, match="Server Error"):
        client.mutation("messages:crash", {"channel": channel})
    assert client.action("messages:echo", {"value": [1, 2.5, "x", None]})["echoed"][2] == "x"
    client.set_auth(token)
    assert client.query("messages:whoami")["subject"]
    client.clear_auth()
    updates.unsubscribe()


def js_session(server: ServerProcess, channel: str, token: str) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the JS client's session"
    done = subprocess.run(
        [node, str(DRIVER), server.url, token, channel],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DONE" in done.stdout


def test_every_server_message_of_real_js_and_python_sessions_conforms(
    server: ServerProcess, channel: str
) -> None:
    token = server.convex_token(server.sign_up(f"wire-{time.monotonic_ns()}@example.com"))
    before = {c.id for c in server.connections()}
    python_session(server, channel + "-py", token)
    js_session(server, channel + "-js", token)

    sessions = [c for c in server.connections() if c.id not in before]
    paths = {c.path for c in sessions}
    assert "/api/sync" in paths  # the Python client
    assert any(p.startswith("/api/1.") for p in paths)  # the JS client
    problems: list[str] = []
    kinds: set[str] = set()
    for connection in sessions:
        for text in (f.text for f in connection.frames if f.direction == "out"):
            message = json.loads(text)
            kinds.add(message["type"])
            problems.extend(f"{connection.path}: {p}" for p in check_server_message(message))
        for text in (f.text for f in connection.frames if f.direction == "in"):
            try:
                parse_client_message(text)
            except ProtocolError as error:
                problems.append(f"{connection.path}: client frame refused: {error} ({text[:200]})")
    assert problems == []
    # The sessions exercised every message a healthy session gets.
    assert {"Transition", "MutationResponse", "ActionResponse"} <= kinds
    failed = [
        m
        for c in sessions
        for m in c.sent()
        if m["type"] == "MutationResponse" and m["success"] is False
    ]
    assert failed
    assert all("ts" not in m for m in failed)
