"""The official Python ``ConvexHttpClient``, unchanged, against a real server process.

It calls ``raise_for_status()`` before it reads the body, then reads ``code`` and ``message``
from any error status: so a function that ran and failed must answer 200 with
``status: "error"`` (as Convex's backend does), and every other error ``{code, message}``.
"""

from __future__ import annotations

import time

import httpx
import pytest
from convex import ConvexError
from convex.http_client import ConvexExecutionError, ConvexHttpClient

from tests.clients.server import ServerProcess

pytestmark = pytest.mark.timeout(60)


def test_queries_mutations_and_actions_succeed(server: ServerProcess, channel: str) -> None:
    http = ConvexHttpClient(server.url)
    assert http.query("messages:ping") == "pong"
    assert isinstance(http.mutation("messages:send", {"channel": channel, "body": "hi"}), str)
    assert http.query("messages:list", {"channel": channel}) == ["hi"]
    assert http.query("messages:count", {"channel": channel}) == 1
    assert http.action("messages:echo", {"value": "v"})["echoed"] == "v"


def test_a_convex_error_keeps_its_data(server: ServerProcess, channel: str) -> None:
    http = ConvexHttpClient(server.url)
    with pytest.raises(ConvexError) as info:
        http.mutation("messages:send_then_refuse", {"channel": channel, "body": "no"})
    assert info.value.data["code"] == "SENSITIVE_VERIFICATION_REQUIRED"
    assert info.value.data["methods"] == ["password"]
    assert http.query("messages:list", {"channel": channel}) == []
    with pytest.raises(ConvexError) as info:
        http.query("messages:refuse", {"channel": channel})
    assert info.value.data["level"] == 3
    with pytest.raises(ConvexError) as info:
        http.action("messages:refuse_action")
    assert info.value.data == {"code": "RATE_LIMITED", "message": "slow down", "retryAfterMs": 1500}


def test_a_crash_is_an_execution_error(server: ServerProcess, channel: str) -> None:
    with pytest.raises(ConvexExecutionError, match=r"^Server Error"):
        ConvexHttpClient(server.url).mutation("messages:crash", {"channel": channel})


def test_an_unknown_function_and_bad_arguments_are_convex_errors(server: ServerProcess) -> None:
    http = ConvexHttpClient(server.url)
    with pytest.raises(ConvexError) as info:
        http.query("messages:nope")
    assert info.value.data["code"] == "NOT_FOUND"
    with pytest.raises(ConvexError) as info:
        http.mutation("messages:send", {"channel": 1, "body": "b"})
    assert info.value.data["code"] == "INVALID_ARGUMENT"
    assert info.value.data["path"] == "channel"
    assert info.value.data["message"].startswith("ArgumentValidationError: ")


def test_auth_by_token_and_a_refused_token(server: ServerProcess) -> None:
    email = f"http-{time.monotonic_ns()}@example.com"
    http = ConvexHttpClient(server.url)
    http.set_auth(server.convex_token(server.sign_up(email)))
    assert http.query("messages:whoami")["email"] == email
    http.set_auth("not-a-token")
    # An error before any function ran: the status with {code, message}.
    with pytest.raises(Exception, match=r"^401 UNAUTHENTICATED: ") as info:
        http.query("messages:whoami")
    assert not isinstance(info.value, ConvexError)


def test_the_wire_answers_as_convex_does(server: ServerProcess) -> None:
    def post(body: object, **headers: str) -> httpx.Response:
        return httpx.post(f"{server.url}/api/query", json=body, headers=headers, timeout=30)

    ok = post({"path": "messages:ping", "args": {}, "format": "convex_encoded_json"})
    assert (ok.status_code, ok.json()) == (200, {"status": "success", "value": "pong"})
    # Numbers as Convex writes its float64s: the Python client refuses a bare JSON integer.
    count = post({"path": "messages:count", "args": {"channel": "w"}})
    assert count.text == '{"status":"success","value":0.0}'
    failed = post({"path": "messages:refuse", "args": [{"channel": "w"}]})
    assert failed.status_code == 200
    assert failed.json()["status"] == "error"
    assert failed.json()["errorMessage"].startswith("Uncaught ConvexError: ")
    assert failed.json()["errorData"]["code"] == "FORBIDDEN"
    refused = post({"path": "messages:ping", "args": {}}, Authorization="Bearer nope")
    assert refused.status_code == 401
    assert set(refused.json()) == {"code", "message"}
    malformed = httpx.post(f"{server.url}/api/query", content=b"{", timeout=30)
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "INVALID_ARGUMENT"
