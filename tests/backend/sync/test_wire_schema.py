"""The checker behind the wire-conformance test refuses what the Rust client would refuse,
and passes what this server's encoders write."""

from __future__ import annotations

import json

import pytest

from backend.sync.protocol import (
    INITIAL,
    StateVersion,
    action_response_failure,
    auth_error,
    mutation_response_failure,
    mutation_response_success,
    ping,
    query_failed,
    query_removed,
    query_updated,
    transition,
)
from tests.backend.sync.wire_schema import check_server_message

VERSION = {"querySet": 1, "identity": 0, "ts": "AQAAAAAAAAA="}


def test_every_encoder_writes_what_the_clients_read() -> None:
    texts = [
        transition(
            INITIAL,
            StateVersion(1, 1, 5),
            [
                query_updated(0, {"a": [1, 2.5, None, {"$integer": "BQAAAAAAAAA="}]}),
                query_failed(1, "Uncaught ConvexError: {}", {"code": "X"}),
                query_failed(2, "Server Error"),
                query_removed(3),
            ],
            client_clock_skew=-1796154542140,
            server_ts=1795908379159000000,
        ),
        mutation_response_success(4, "id", 7),
        mutation_response_failure(5, "Uncaught ConvexError: {}", {"code": "X"}),
        action_response_failure(6, "Server Error"),
        auth_error("Invalid token: expired", 0, True),
        ping(),
    ]
    for text in texts:
        assert check_server_message(json.loads(text)) == [], text


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        (
            {
                "type": "Transition",
                "startVersion": VERSION,
                "endVersion": VERSION,
                "modifications": [],
                "clientClockSkew": -1796154542140.455,
            },
            "clientClockSkew: i64 must be a JSON integer",
        ),
        (
            {
                "type": "Transition",
                "startVersion": {**VERSION, "querySet": 1.0},
                "endVersion": VERSION,
                "modifications": [],
            },
            "querySet: u32 must be a JSON integer",
        ),
        ({"type": "Transition", "startVersion": VERSION, "endVersion": VERSION}, "missing"),
        (
            {"type": "MutationResponse", "requestId": 1, "success": True, "result": 1},
            "missing 'logLines'",
        ),
        (
            {
                "type": "MutationResponse",
                "requestId": 1,
                "success": False,
                "result": {"no": 1},
                "logLines": [],
            },
            "error message string",
        ),
        (
            {
                "type": "MutationResponse",
                "requestId": 2**32,
                "success": True,
                "result": 1,
                "ts": "AQAAAAAAAAA=",
                "logLines": [],
            },
            "out of u32 range",
        ),
        ({"type": "Ping", "extra": 1}, "'extra' is not in the Rust type"),
        ({"type": "Pong"}, "unknown type"),
        (
            {
                "type": "ActionResponse",
                "requestId": 1,
                "success": True,
                "result": {"$set": []},
                "logLines": [],
            },
            "cannot be decoded",
        ),
        (
            {
                "type": "ActionResponse",
                "requestId": 1,
                "success": True,
                "result": {"$float": "AAAAAAAA8D8="},  # 1.0
                "logLines": [],
            },
            "plain number",
        ),
        (
            {"type": "AuthError", "error": "x", "baseVersion": -1},
            "out of u32 range",
        ),
    ],
)
def test_what_the_rust_client_refuses_is_reported(message: object, complaint: str) -> None:
    problems = check_server_message(message)
    assert any(complaint in p for p in problems), problems
