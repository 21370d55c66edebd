"""The official Python client (``convex`` on PyPI, whose core is Convex's Rust sync client),
unchanged, against a real server process on each database.

Its calls block while holding the GIL (the Rust core waits inside them, checking for signals),
so a call that never completes is ended by the test's timeout, and "promptly" is measured
around the call. The server is a separate process for the same reason.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from convex import ConvexClient, ConvexError

from tests.clients.server import Connection, ServerProcess

pytestmark = pytest.mark.timeout(60)
PROMPT = 10.0  # seconds: generous for a busy machine, far below "never"


def connects(server: ServerProcess) -> list[dict[str, Any]]:
    """Every Connect the server received, in order."""
    return [
        message
        for connection in server.connections()
        for message in connection.received()
        if message["type"] == "Connect"
    ]


def test_query_mutation_and_action(server: ServerProcess, channel: str) -> None:
    client = ConvexClient(server.url)
    assert client.query("messages:ping") == "pong"
    message_id = client.mutation("messages:send", {"channel": channel, "body": "hello"})
    assert isinstance(message_id, str)
    assert client.query("messages:list", {"channel": channel}) == ["hello"]
    # 7 travels as a number (the client sends ints as floats); the action reads through a query.
    value: dict[str, Any] = {"n": 7, "tags": ["x"]}
    assert client.action("messages:echo", {"value": value}) == {
        "echoed": {"n": 7, "tags": ["x"]},
        "count": client.query("messages:count", {"channel": "a"}),
    }
    assert client.query("messages:count", {"channel": channel}) == 1
    # The client sends the int 1 as 1.0; an `int` parameter takes it.
    assert client.query("messages:first", {"channel": channel, "n": 1}) == ["hello"]


def test_a_subscription_sees_another_clients_write(server: ServerProcess, channel: str) -> None:
    watcher, writer = ConvexClient(server.url), ConvexClient(server.url)
    updates = watcher.subscribe("messages:list", {"channel": channel})
    assert next(updates) == []
    writer.mutation("messages:send", {"channel": channel, "body": "from the other client"})
    started = time.monotonic()
    assert next(updates) == ["from the other client"]
    assert time.monotonic() - started < PROMPT
    writer.mutation("messages:send", {"channel": channel, "body": "again"})
    assert next(updates) == ["from the other client", "again"]
    updates.unsubscribe()


def test_set_auth_with_the_token_from_the_auth_endpoint(server: ServerProcess) -> None:
    email = f"py-{time.monotonic_ns()}@example.com"
    token = server.convex_token(server.sign_up(email, name="Grace Hopper"))
    client = ConvexClient(server.url)
    assert client.query("messages:whoami") is None
    client.set_auth(token)
    identity = client.query("messages:whoami")
    assert identity["email"] == email
    assert identity["name"] == "Grace Hopper"
    assert identity["emailVerified"] is False
    assert identity["tokenIdentifier"] == f"{identity['issuer']}|{identity['subject']}"
    client.clear_auth()
    assert client.query("messages:whoami") is None


def test_a_convex_error_from_a_mutation_arrives_promptly_with_its_data(
    server: ServerProcess, channel: str
) -> None:
    client = ConvexClient(server.url)
    started = time.monotonic()
    with pytest.raises(ConvexError) as info:
        client.mutation("messages:send_then_refuse", {"channel": channel, "body": "no"})
    assert time.monotonic() - started < PROMPT
    assert info.value.data == {
        "code": "SENSITIVE_VERIFICATION_REQUIRED",
        "message": "verify first",
        "methods": ["password"],
    }
    assert str(info.value).startswith("Uncaught ConvexError: ")
    assert client.query("messages:list", {"channel": channel}) == []  # rolled back
    # The client is not stuck: the next mutation completes too.
    client.mutation("messages:send", {"channel": channel, "body": "yes"})
    assert client.query("messages:list", {"channel": channel}) == ["yes"]


def test_a_convex_error_from_a_query_arrives_with_its_data(
    server: ServerProcess, channel: str
) -> None:
    client = ConvexClient(server.url)
    started = time.monotonic()
    with pytest.raises(ConvexError) as info:
        client.query("messages:refuse", {"channel": channel})
    assert time.monotonic() - started < PROMPT
    assert info.value.data == {
        "code": "FORBIDDEN",
        "message": f"not in {channel}",
        "channel": channel,
        "level": 3,
    }


def test_an_unknown_function_is_not_found(server: ServerProcess) -> None:
    client = ConvexClient(server.url)
    for call in (client.query, client.mutation, client.action):
        with pytest.raises(ConvexError) as info:
            call("messages:nope", {})
        assert info.value.data["code"] == "NOT_FOUND"
        assert "messages:nope" in info.value.data["message"]


def test_bad_arguments_name_the_field(server: ServerProcess, channel: str) -> None:
    client = ConvexClient(server.url)
    with pytest.raises(ConvexError) as info:
        client.query("messages:list", {"channel": 5})
    assert info.value.data["code"] == "INVALID_ARGUMENT"
    assert info.value.data["path"] == "channel"
    assert info.value.data["message"].startswith(
        "ArgumentValidationError: Value does not match validator.\nPath: .channel\nValue: 5"
    )
    with pytest.raises(ConvexError) as info:
        client.mutation("messages:send", {"channel": channel})
    assert info.value.data["path"] == "body"
    assert "missing the required field `body`" in info.value.data["message"]


def test_a_crash_is_a_plain_error_without_data(server: ServerProcess, channel: str) -> None:
    client = ConvexClient(server.url)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the client raises a bare Exception
        client.mutation("messages:crash", {"channel": channel})
    assert not isinstance(info.value, ConvexError)
    assert str(info.value).startswith("Server Error")
    assert client.query("messages:list", {"channel": channel}) == []


def test_a_return_value_of_the_wrong_type_fails_the_call_and_writes_nothing(
    server: ServerProcess, channel: str
) -> None:
    client = ConvexClient(server.url)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the client raises a bare Exception
        client.mutation("messages:send_counted", {"channel": channel, "body": "x"})
    assert not isinstance(info.value, ConvexError)
    # the server runs in DEV_MODE, so the caller is shown the whole check
    assert str(info.value).startswith("ReturnsValidationError: Value does not match validator.")
    assert "Validator: v.number() (an integer)" in str(info.value)
    assert "Function: messages:send_counted" in str(info.value)
    assert client.query("messages:list", {"channel": channel}) == []
    client.mutation("messages:send", {"channel": channel, "body": "y"})
    with pytest.raises(Exception) as info:  # noqa: PT011
        client.query("messages:bodies_claimed_numbers", {"channel": channel})
    assert "Path: [0]" in str(info.value)


def test_the_client_never_sees_a_float_where_convex_types_an_integer(
    server: ServerProcess, channel: str
) -> None:
    # The regression behind it: a fractional clientClockSkew made this client drop every
    # Transition and reconnect in a loop. It connects once and stays.
    client = ConvexClient(server.url)
    client.mutation("messages:send", {"channel": channel, "body": "x"})
    assert client.query("messages:list", {"channel": channel}) == ["x"]
    assert client.query("messages:list", {"channel": channel}) == ["x"]
    (connection,) = watching(server, channel)
    (connect,) = [m for m in connection.received() if m["type"] == "Connect"]
    assert connect["lastCloseReason"] == "InitialConnect"
    skews = [m["clientClockSkew"] for m in connection.sent() if m["type"] == "Transition"]
    assert skews
    assert all(type(skew) is int for skew in skews)


def test_a_server_restart_while_subscribed_reconnects_and_resumes(
    server: ServerProcess, channel: str
) -> None:
    watcher = ConvexClient(server.url)
    updates = watcher.subscribe("messages:list", {"channel": channel})
    assert next(updates) == []
    before = len(connects(server))
    server.restart()
    ConvexClient(server.url).mutation("messages:send", {"channel": channel, "body": "after"})
    # The watcher reconnects on its own (its backoff starts at 100 ms), resubscribes and
    # receives the write made while it was away.
    assert next(updates) == ["after"]
    assert watcher.mutation("messages:send", {"channel": channel, "body": "mine"}) is not None
    assert next(updates) == ["after", "mine"]
    reconnects = [c for c in connects(server)[before:] if c["connectionCount"] > 0]
    assert reconnects, "the watcher came back on a new socket"


def watching(server: ServerProcess, channel: str) -> list[Connection]:
    """The connections that subscribed to ``channel`` (a reconnect subscribes again)."""
    return [
        connection
        for connection in server.connections()
        if any(
            change.get("args") == [{"channel": channel}]
            for message in connection.received()
            if message["type"] == "ModifyQuerySet"
            for change in message["modifications"]
        )
    ]


@pytest.mark.timeout(120)
def test_idle_for_35_seconds_without_a_reconnect(
    sqlite_server: ServerProcess, postgres_server: ServerProcess
) -> None:
    # The Rust client drops a socket that hears nothing for 30 s; the server's Ping after 15 s
    # of quiet keeps it. Both databases idle at once, so the wait is paid once.
    servers = (sqlite_server, postgres_server)
    channel = f"idle-{time.monotonic_ns()}"
    clients = [ConvexClient(s.url) for s in servers]
    subscriptions = [c.subscribe("messages:list", {"channel": channel}) for c in clients]
    for updates in subscriptions:
        assert next(updates) == []
    counts = [len(connects(s)) for s in servers]
    time.sleep(35)
    for server, count, client, updates in zip(servers, counts, clients, subscriptions, strict=True):
        reasons = [c.get("lastCloseReason") or "" for c in connects(server)[count:]]
        inactive = [reason for reason in reasons if "Inactive" in reason]
        assert inactive == [], "no client gave up on a quiet server"
        (connection,) = watching(server, channel)  # one socket all along: no reconnect
        assert not connection.closed
        assert any(m["type"] == "Ping" for m in connection.sent()), "kept alive by Pings"
        client.mutation("messages:send", {"channel": channel, "body": "still here"})
        assert next(updates) == ["still here"]
        assert len(watching(server, channel)) == 1


def test_a_functions_prints_travel_as_log_lines(server: ServerProcess, channel: str) -> None:
    client = ConvexClient(server.url)
    updates = client.subscribe("messages:list_logged", {"channel": channel})
    assert next(updates) == []
    client.mutation("messages:send_logged", {"channel": channel, "body": "hi"})
    assert next(updates) == ["hi"]
    updates.unsubscribe()
    (connection,) = watching(server, channel)
    sent = connection.sent()
    responses = [m for m in sent if m["type"] == "MutationResponse"]
    assert responses[-1]["logLines"] == [f"[LOG] sending to {channel}"]
    query_lines = [
        change["logLines"]
        for m in sent
        if m["type"] == "Transition"
        for change in m["modifications"]
        if change["type"] == "QueryUpdated"
    ]
    assert [f"[LOG] listing {channel} 0"] in query_lines
    assert [f"[LOG] listing {channel} 1"] in query_lines
