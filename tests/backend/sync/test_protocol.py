"""The sync protocol's parsing and encoding, pinned to the shapes the official client uses."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.sync.protocol import (
    INITIAL,
    Action,
    AddQuery,
    Authenticate,
    ClientMessage,
    Connect,
    Event,
    ModifyQuerySet,
    Mutation,
    ProtocolError,
    ProtocolErrorReason,
    RemoveQuery,
    StateVersion,
    action_response_failure,
    action_response_success,
    auth_error,
    decode_ts,
    encode_ts,
    error_message_for,
    fatal_error,
    mutation_response_failure,
    mutation_response_success,
    parse_client_message,
    ping,
    query_failed,
    query_removed,
    query_updated,
    transition,
    transition_from_parts,
)
from backend.values.convex_json import Int64, dumps, to_json

MESSAGE_CLASSES = (Connect, ModifyQuerySet, Mutation, Action, Authenticate, Event)
SERVER_TYPES = {
    "Transition",
    "MutationResponse",
    "ActionResponse",
    "AuthError",
    "FatalError",
    "Ping",
}


def reason_of(raw: str | bytes, **limits: int) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(raw, **limits)
    return caught.value.reason


# --- Timestamps ------------------------------------------------------------------------------


def test_ts_encoding_matches_the_client_for_zero_and_one() -> None:
    assert encode_ts(0) == "AAAAAAAAAAA="
    assert encode_ts(1) == "AQAAAAAAAAA="
    assert decode_ts("AAAAAAAAAAA=") == 0
    assert decode_ts("AQAAAAAAAAA=") == 1


def test_ts_encoding_is_little_endian_and_unsigned() -> None:
    assert encode_ts(2**64 - 1) == "//////////8="
    assert decode_ts("//////////8=") == 2**64 - 1
    assert encode_ts(256) == "AAEAAAAAAAA="


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_ts_round_trips_over_the_whole_u64_range(ts: int) -> None:
    text = encode_ts(ts)
    assert len(text) == 12
    assert text.endswith("=")
    assert decode_ts(text) == ts


@pytest.mark.parametrize("bad", [-1, 2**64, True, 1.0])
def test_encode_ts_refuses_values_outside_u64(bad: Any) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        encode_ts(bad)


@pytest.mark.parametrize(
    "bad",
    [
        0,
        None,
        ["AAAAAAAAAAA="],
        "",
        "AAAAAAAAAA==",  # 7 bytes
        "AAAAAAAAAAAA",  # 9 bytes
        "AAAAAAAAAAA",  # missing padding
        "AAAAAAAA AAA=",
        "not base64!!",
        "ÀAAAAAAAAAA=",
    ],
)
def test_decode_ts_refuses_anything_but_base64_of_eight_bytes(bad: Any) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_ts(bad)
    assert caught.value.reason == "MalformedMessage"


def test_state_version_wire_form() -> None:
    assert StateVersion(0, 0, 0) == INITIAL
    assert INITIAL.to_json() == {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="}
    assert StateVersion(3, 1, 1).to_json() == {"querySet": 3, "identity": 1, "ts": "AQAAAAAAAAA="}


@pytest.mark.parametrize(
    "fields", [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, 2**64), (True, 0, 0)]
)
def test_state_version_refuses_impossible_values(fields: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="StateVersion"):
        StateVersion(*fields)


# --- Client messages: the spec's examples --------------------------------------------------------

SESSION = "a99685cf-659d-450f-89ec-149b8ff645fe"


def test_parses_connect_example() -> None:
    raw = (
        '{"type":"Connect","sessionId":"a99685cf-659d-450f-89ec-149b8ff645fe",'
        '"connectionCount":0,"lastCloseReason":"InitialConnect","clientTs":1795908379159}'
    )
    assert parse_client_message(raw) == Connect(
        session_id=SESSION,
        connection_count=0,
        last_close_reason="InitialConnect",
        max_observed_timestamp=None,
        client_ts=1795908379159,
    )


def test_parses_reconnect_with_null_reason_and_max_observed_timestamp() -> None:
    raw = json.dumps(
        {
            "type": "Connect",
            "sessionId": SESSION,
            "connectionCount": 2,
            "lastCloseReason": None,
            "maxObservedTimestamp": "TPNUzSdZ7Bg=",
            "clientTs": 1795908379159,
        }
    )
    message = parse_client_message(raw)
    assert isinstance(message, Connect)
    assert message.connection_count == 2
    assert message.last_close_reason is None
    assert message.max_observed_timestamp == decode_ts("TPNUzSdZ7Bg=")
    assert encode_ts(message.max_observed_timestamp) == "TPNUzSdZ7Bg="


def test_parses_modify_query_set_example() -> None:
    raw = (
        '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":['
        '{"type":"Add","queryId":0,"udfPath":"messages:list","args":[{}]},'
        '{"type":"Remove","queryId":3}]}'
    )
    assert parse_client_message(raw) == ModifyQuerySet(
        base_version=0,
        new_version=1,
        modifications=(
            AddQuery(query_id=0, udf_path="messages:list", args={}, journal=None),
            RemoveQuery(query_id=3),
        ),
    )


def test_parses_empty_modify_query_set_sent_after_every_reconnect() -> None:
    raw = '{"type":"ModifyQuerySet","baseVersion":0,"newVersion":1,"modifications":[]}'
    assert parse_client_message(raw) == ModifyQuerySet(0, 1, ())


def test_add_keeps_journal_and_ignores_component_path() -> None:
    raw = json.dumps(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 4,
            "newVersion": 5,
            "modifications": [
                {
                    "type": "Add",
                    "queryId": 7,
                    "udfPath": "messages:list",
                    "args": [{"channel": "#general", "paginationOpts": {"numItems": 5}}],
                    "journal": "j-1",
                    "componentPath": "some/component",
                }
            ],
        }
    )
    message = parse_client_message(raw)
    assert isinstance(message, ModifyQuerySet)
    assert message.modifications == (
        AddQuery(
            7, "messages:list", {"channel": "#general", "paginationOpts": {"numItems": 5}}, "j-1"
        ),
    )


def test_parses_mutation_example() -> None:
    raw = (
        '{"type":"Mutation","requestId":4,"udfPath":"messages:send",'
        '"args":[{"author":"ada","body":"hello"}]}'
    )
    assert parse_client_message(raw) == Mutation(
        request_id=4, udf_path="messages:send", args={"author": "ada", "body": "hello"}
    )


def test_parses_action_example_decoding_bigint_args() -> None:
    raw = (
        '{"type":"Action","requestId":5,"udfPath":"messages:echo",'
        '"args":[{"big":{"$integer":"BQAAAAAAAAA="}}]}'
    )
    message = parse_client_message(raw)
    assert message == Action(request_id=5, udf_path="messages:echo", args={"big": Int64(5)})
    assert isinstance(message, Action)
    assert type(message.args["big"]) is Int64


def test_parses_authenticate_examples() -> None:
    user = '{"type":"Authenticate","tokenType":"User","value":"<JWT>","baseVersion":0}'
    none = '{"type":"Authenticate","tokenType":"None","baseVersion":2}'
    admin = (
        '{"type":"Authenticate","tokenType":"Admin","value":"<admin key>","baseVersion":0,'
        '"impersonating":{"subject":"x"}}'
    )
    assert parse_client_message(user) == Authenticate("User", "<JWT>", 0)
    assert parse_client_message(none) == Authenticate("None", None, 2)
    assert parse_client_message(admin) == Authenticate("Admin", "<admin key>", 0)


def test_parses_event_and_ignores_its_payload() -> None:
    raw = '{"type":"Event","eventType":"ClientConnect","event":{"anything":[1,2,3]}}'
    assert parse_client_message(raw) == Event(event_type="ClientConnect")


def test_binary_frame_holding_utf8_json_is_accepted() -> None:
    raw = '{"type":"Event","eventType":"NetworkRecoveryReconnect","note":"é"}'.encode()
    assert parse_client_message(raw) == Event("NetworkRecoveryReconnect")


def test_unknown_extra_fields_are_ignored() -> None:
    raw = json.dumps(
        {
            "type": "Mutation",
            "requestId": 1,
            "udfPath": "m:f",
            "args": [{}],
            "componentPath": None,
            "clientTs": 12,
            "futureField": {"x": 1},
        }
    )
    assert parse_client_message(raw) == Mutation(1, "m:f", {})


def test_largest_u32_and_limits_are_accepted() -> None:
    raw = json.dumps(
        {"type": "Mutation", "requestId": 2**32 - 1, "udfPath": "m" * 256, "args": [{}]}
    )
    assert parse_client_message(raw) == Mutation(2**32 - 1, "m" * 256, {})
    connect = json.dumps({"type": "Connect", "sessionId": "s" * 128, "connectionCount": 0})
    assert parse_client_message(connect) == Connect("s" * 128, 0, None, None, None)


def test_paired_surrogate_escapes_decode_to_one_character() -> None:
    message = parse_client_message('{"type":"Event","eventType":"\\ud83d\\ude00"}')
    assert message == Event("\U0001f600")


# --- Client messages: every way to be wrong ------------------------------------------------------


REMOVE: Any = object()
"""Pass as an override to leave that field out of the message."""


def with_overrides(fields: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**fields, **overrides}
    return {k: v for k, v in merged.items() if v is not REMOVE}


def mutation(**overrides: Any) -> str:
    fields = {"type": "Mutation", "requestId": 1, "udfPath": "m:f", "args": [{}]}
    return json.dumps(with_overrides(fields, overrides))


def connect(**overrides: Any) -> str:
    fields = {"type": "Connect", "sessionId": SESSION, "connectionCount": 0}
    return json.dumps(with_overrides(fields, overrides))


def modify(*modifications: Any, base: Any = 0, new: Any = 1) -> str:
    fields = {"type": "ModifyQuerySet", "modifications": list(modifications)}
    return json.dumps(with_overrides(fields, {"baseVersion": base, "newVersion": new}))


def add(**overrides: Any) -> dict[str, Any]:
    fields = {"type": "Add", "queryId": 0, "udfPath": "q:list", "args": [{}]}
    return with_overrides(fields, overrides)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        '{"type":"Ping"',
        "[]",
        "null",
        '"Connect"',
        "5",
        "{}",
        '{"type":5}',
        '{"type":null}',
        '{"type":"Event","eventType":NaN}',
        '{"type":"Event","eventType":Infinity}',
        "[" * 100_000,
        '{"type":"Event","eventType":"x","n":' + "1" * 5000 + "}",
        '{"type":"Event","eventType":"\\ud800"}',
        '{"type":"Event","eventType":"x","\\udfff":1}',
    ],
)
def test_frames_that_are_not_a_json_object_with_a_type_are_malformed(raw: str) -> None:
    assert reason_of(raw) == "MalformedMessage"


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"type":"Event","eventType":"\xc0"}'])
def test_binary_frames_that_are_not_utf8_are_malformed(raw: bytes) -> None:
    assert reason_of(raw) == "MalformedMessage"


def test_utf16_json_in_a_binary_frame_is_malformed_not_guessed() -> None:
    raw = '{"type":"Event","eventType":"x"}'.encode("utf-16")
    assert reason_of(raw) == "MalformedMessage"


@pytest.mark.parametrize("kind", ["Bogus", "connect", "Ping", "Transition", "Add", ""])
def test_unknown_message_types_are_named_as_such(kind: str) -> None:
    assert reason_of(json.dumps({"type": kind})) == "UnknownMessageType"


@pytest.mark.parametrize(
    "raw",
    [
        connect(sessionId=REMOVE),
        connect(sessionId=5),
        connect(sessionId=None),
        connect(sessionId=""),
        connect(sessionId="s" * 129),
        connect(connectionCount=REMOVE),
        connect(connectionCount=-1),
        connect(connectionCount=1.0),
        connect(connectionCount=True),
        connect(connectionCount="0"),
        connect(connectionCount=2**53 + 1),
        connect(connectionCount=2**32),  # Convex types it u32
        connect(lastCloseReason=5),
        connect(lastCloseReason="x" * 2000),
        connect(maxObservedTimestamp=5),
        connect(maxObservedTimestamp="AAAA"),
        connect(clientTs="now"),
        connect(clientTs=True),
        connect(clientTs=[1]),
        # Convex types clientTs as an i64: a fraction is as wrong as a string.
        connect(clientTs=1795908379159.5),
        connect(clientTs=0.0),
        connect(clientTs=2**53 + 1),
        '{"type":"Connect","sessionId":"s","connectionCount":0,"clientTs":1e400}',
        mutation(requestId=REMOVE),
        mutation(requestId=-5),
        mutation(requestId=1.5),
        mutation(requestId=2**32),
        mutation(udfPath=REMOVE),
        mutation(udfPath=["m:f"]),
        mutation(udfPath="m" * 257),
        mutation(args=REMOVE),
        mutation(type="Action", requestId=None),
        modify(base=REMOVE),
        modify(base="0"),
        modify(new=None),
        modify(add(queryId=REMOVE)),
        modify(add(queryId=-1)),
        modify(add(udfPath=None)),
        modify(add(journal=5)),
        modify(add(type="Replace")),
        modify(add(type=REMOVE)),
        modify({"type": "Remove", "queryId": "3"}),
        modify(5),
        modify(None),
        json.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1}),
        json.dumps(
            {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": {}}
        ),
        '{"type":"Authenticate","tokenType":"Bearer","value":"t","baseVersion":0}',
        '{"type":"Authenticate","tokenType":"User","baseVersion":0}',
        '{"type":"Authenticate","tokenType":"User","value":null,"baseVersion":0}',
        '{"type":"Authenticate","tokenType":"Admin","value":7,"baseVersion":0}',
        '{"type":"Authenticate","tokenType":"User","value":"t"}',
        '{"type":"Authenticate","value":"t","baseVersion":0}',
        '{"type":"Event"}',
        '{"type":"Event","eventType":{}}',
    ],
)
def test_missing_or_wrong_typed_fields_are_malformed(raw: str) -> None:
    assert reason_of(raw) == "MalformedMessage"


@pytest.mark.parametrize(
    "args",
    [
        {},
        [],
        [{}, {}],
        [5],
        [None],
        [[{}]],
        "{}",
        [{"$bytes": "AAAA"}],  # decodes to bytes, not an object
        [{"$integer": "BQAAAAAAAAA="}],
        [{"$weird": 1}],
        [{"x": {"$integer": "AAA="}}],
        [{"x": {"$float": "AAAAAAAA8D8="}}],  # 1.0 must be a plain number
        [{"bad key!\u00e9": 1}],
    ],
)
def test_args_that_are_not_one_encoded_object_are_invalid_args(args: Any) -> None:
    assert reason_of(mutation(args=args)) == "InvalidArgs"
    assert reason_of(mutation(type="Action", args=args)) == "InvalidArgs"
    assert reason_of(modify(add(args=args))) == "InvalidArgs"


def test_special_floats_in_args_decode_to_python_floats() -> None:
    message = parse_client_message(
        mutation(args=[{"nan": {"$float": "AAAAAAAA+H8="}, "neg_zero": {"$float": "AAAAAAAAAIA="}}])
    )
    assert isinstance(message, Mutation)
    assert math.isnan(message.args["nan"])
    assert math.copysign(1.0, message.args["neg_zero"]) == -1.0


def test_number_literal_too_big_for_a_float_is_invalid_args() -> None:
    raw = '{"type":"Mutation","requestId":1,"udfPath":"m:f","args":[{"x":1e400}]}'
    assert reason_of(raw) == "InvalidArgs"


def test_args_nested_deeper_than_convex_allows_are_invalid_args() -> None:
    deep: Any = {}
    for _ in range(70):
        deep = {"a": deep}
    assert reason_of(mutation(args=[deep])) == "InvalidArgs"


@pytest.mark.parametrize(("base", "new"), [(0, 0), (0, 2), (3, 2), (5, 5)])
def test_new_version_must_be_base_version_plus_one(base: int, new: int) -> None:
    assert reason_of(modify(base=base, new=new)) == "InvalidVersion"


def test_too_many_modifications_are_refused() -> None:
    raw = modify(*[add(queryId=i) for i in range(11)])
    assert reason_of(raw, max_modifications=10) == "TooManyModifications"
    assert isinstance(parse_client_message(raw, max_modifications=11), ModifyQuerySet)


def test_oversized_frames_are_refused_before_parsing() -> None:
    raw = mutation(args=[{"body": "x" * 2000}])
    assert reason_of(raw, max_bytes=1000) == "MessageTooLarge"
    assert reason_of(raw.encode(), max_bytes=1000) == "MessageTooLarge"
    # Not even parsed: garbage over the limit is "too large", not "malformed".
    assert reason_of("x" * 1001, max_bytes=1000) == "MessageTooLarge"


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    raw = '{"type":"Event","eventType":"' + "é" * 600 + '"}'
    assert len(raw) < 1000 < len(raw.encode())
    assert reason_of(raw, max_bytes=1000) == "MessageTooLarge"
    assert parse_client_message(raw, max_bytes=len(raw.encode())) == Event("é" * 600)


def test_error_messages_do_not_echo_client_input() -> None:
    secret = "S" * 5000
    for raw in (
        json.dumps({"type": secret}),
        mutation(udfPath=secret),
        connect(sessionId=secret),
        mutation(args=[{"x": {"$integer": secret}}]),
        mutation(args=[{"$" + secret: 1}]),
    ):
        with pytest.raises(ProtocolError) as caught:
            parse_client_message(raw)
        assert len(caught.value.message) < 200
        assert "S" * 100 not in str(caught.value)


def test_reason_is_a_short_close_reason() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message("{}")
    assert caught.value.reason == ProtocolErrorReason.MALFORMED_MESSAGE
    assert str(caught.value).startswith("MalformedMessage: ")
    # A WebSocket close reason must fit in 123 bytes.
    assert all(len(reason.encode()) <= 123 for reason in ProtocolErrorReason)


# --- Fuzzing: a ProtocolError or a message, never anything else ----------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# Values that are right for some field, so the fuzzer gets past the first check often.
plausible = st.one_of(
    json_values,
    st.integers(min_value=-2, max_value=3),
    st.just(2**53 + 1),
    st.sampled_from(["AAAAAAAAAAA=", "AQAAAAAAAAA=", "User", "None", "Admin", "m:f", SESSION]),
    st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=2),
    st.just([{"$integer": "BQAAAAAAAAA="}]),
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["Add", "Remove", "Other"])},
            optional={
                "queryId": st.one_of(json_values, st.integers(0, 5)),
                "udfPath": st.one_of(json_values, st.just("q:list")),
                "args": st.one_of(json_values, st.just([{}])),
                "journal": json_values,
            },
        ),
        max_size=3,
    ),
)

FIELD_NAMES = [
    "sessionId",
    "connectionCount",
    "lastCloseReason",
    "maxObservedTimestamp",
    "clientTs",
    "baseVersion",
    "newVersion",
    "modifications",
    "requestId",
    "udfPath",
    "args",
    "tokenType",
    "value",
    "eventType",
    "queryId",
    "journal",
]

fuzzed_messages = st.fixed_dictionaries(
    {
        "type": st.one_of(
            st.sampled_from(
                ["Connect", "ModifyQuerySet", "Mutation", "Action", "Authenticate", "Event"]
            ),
            json_values,
        )
    },
    optional={name: plausible for name in FIELD_NAMES},
)


def assert_message_or_protocol_error(raw: str | bytes) -> None:
    # Any other exception escapes and fails the test, which is the point.
    error: ProtocolError | None = None
    try:
        message: ClientMessage = parse_client_message(raw, max_bytes=4096)
    except ProtocolError as exc:
        error = exc
    if error is None:
        assert isinstance(message, MESSAGE_CLASSES)
    else:
        assert error.reason in set(ProtocolErrorReason)
        assert len(error.message) < 300


@settings(max_examples=200)
@given(fuzzed_messages)
def test_fuzzed_message_objects_parse_or_raise_protocol_error(data: dict[str, Any]) -> None:
    assert_message_or_protocol_error(json.dumps(data))


@settings(max_examples=200)
@given(json_values)
def test_arbitrary_json_parses_or_raises_protocol_error(data: Any) -> None:
    assert_message_or_protocol_error(json.dumps(data))


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_frames_parse_or_raise_protocol_error(raw: str | bytes) -> None:
    assert_message_or_protocol_error(raw)


@settings(max_examples=200)
@given(st.text(alphabet='{}[]",:0123456789.eE-tfnul\\ud8AQ=', max_size=80))
def test_json_like_noise_parses_or_raises_protocol_error(raw: str) -> None:
    assert_message_or_protocol_error('{"type":"Event","eventType":' + raw)


# A grammar of valid messages, each with the dataclass it must parse to. Corrupting one point
# of a valid message reaches the checks deep inside (an Add's args, a ts) far more often than
# random objects do.

convex_keys = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=8
).filter(lambda key: not key.startswith("$"))
convex_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False)  # NaN != NaN would fail the equality check below
    | st.text(max_size=10)
    | st.binary(max_size=8)
    | st.builds(Int64, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(convex_keys, children, max_size=3)
    ),
    max_leaves=8,
)
convex_args = st.dictionaries(convex_keys, convex_values, max_size=4)
client_ints = st.integers(min_value=0, max_value=2**32 - 1)
udf_paths = st.text(max_size=256)


@st.composite
def query_modifications(draw: st.DrawFn) -> tuple[dict[str, Any], AddQuery | RemoveQuery]:
    query_id = draw(client_ints)
    if draw(st.booleans()):
        return {"type": "Remove", "queryId": query_id}, RemoveQuery(query_id)
    path, args, journal = draw(udf_paths), draw(convex_args), draw(st.none() | st.text())
    data = {"type": "Add", "queryId": query_id, "udfPath": path, "args": [to_json(args)]}
    if journal is not None or draw(st.booleans()):
        data["journal"] = journal
    return data, AddQuery(query_id, path, args, journal)


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[dict[str, Any], ClientMessage]:
    kind = draw(st.sampled_from([cls.__name__ for cls in MESSAGE_CLASSES]))
    if kind == "Connect":
        session_id = draw(st.text(min_size=1, max_size=128))
        count, reason = draw(client_ints), draw(st.none() | st.text(max_size=100))
        max_ts = draw(st.none() | st.integers(min_value=0, max_value=2**64 - 1))
        client_ts = draw(st.none() | st.integers(-(2**53), 2**53))
        data: dict[str, Any] = {
            "type": kind,
            "sessionId": session_id,
            "connectionCount": count,
            "lastCloseReason": reason,
        }
        if max_ts is not None:
            data["maxObservedTimestamp"] = encode_ts(max_ts)
        if client_ts is not None:
            data["clientTs"] = client_ts
        return data, Connect(session_id, count, reason, max_ts, client_ts)
    if kind == "ModifyQuerySet":
        base = draw(st.integers(min_value=0, max_value=2**32 - 2))
        pairs = draw(st.lists(query_modifications(), max_size=4))
        data = {
            "type": kind,
            "baseVersion": base,
            "newVersion": base + 1,
            "modifications": [wire for wire, _ in pairs],
        }
        return data, ModifyQuerySet(base, base + 1, tuple(parsed for _, parsed in pairs))
    if kind in ("Mutation", "Action"):
        request_id, path, args = draw(client_ints), draw(udf_paths), draw(convex_args)
        data = {"type": kind, "requestId": request_id, "udfPath": path, "args": [to_json(args)]}
        cls = Mutation if kind == "Mutation" else Action
        return data, cls(request_id, path, args)
    if kind == "Authenticate":
        token_type = draw(st.sampled_from(["User", "None", "Admin"]))
        base, value = draw(client_ints), draw(st.text(max_size=50))
        data = {"type": kind, "tokenType": token_type, "baseVersion": base}
        if token_type == "None":
            return data, Authenticate("None", None, base)
        data["value"] = value
        return data, Authenticate("User" if token_type == "User" else "Admin", value, base)
    event_type = draw(st.text(max_size=30))
    return {"type": kind, "eventType": event_type, "event": draw(json_values)}, Event(event_type)


@settings(max_examples=200)
@given(valid_messages(), st.booleans())
def test_valid_messages_parse_to_what_was_sent(
    pair: tuple[dict[str, Any], ClientMessage], as_bytes: bool
) -> None:
    data, expected = pair
    text = json.dumps(data)
    assert parse_client_message(text.encode() if as_bytes else text) == expected


@settings(max_examples=300)
@given(valid_messages(), st.data())
def test_valid_messages_with_one_point_corrupted_parse_or_raise(
    pair: tuple[dict[str, Any], ClientMessage], data: st.DataObject
) -> None:
    message = pair[0]
    # Aim at the top-level object or, when there is one, at a query modification inside it.
    target = message
    nested = message.get("modifications")
    if nested and data.draw(st.booleans()):
        target = nested[data.draw(st.integers(0, len(nested) - 1))]
    field = data.draw(st.sampled_from(sorted(target)))
    if data.draw(st.integers(0, 4)) == 0:
        del target[field]
    else:
        target[field] = data.draw(plausible)
    assert_message_or_protocol_error(json.dumps(message))


# --- Server messages -----------------------------------------------------------------------------


def test_transition_has_the_documented_shape() -> None:
    text = transition(
        INITIAL,
        StateVersion(1, 0, 1),
        [
            query_updated(0, [{"body": "hi"}]),
            query_failed(1, "Uncaught ConvexError: {}", {"code": "UNAUTHENTICATED"}),
            query_removed(3),
        ],
        client_clock_skew=12,
        server_ts=1795908379159000000,
    )
    assert json.loads(text) == {
        "type": "Transition",
        "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
        "endVersion": {"querySet": 1, "identity": 0, "ts": "AQAAAAAAAAA="},
        "modifications": [
            {
                "type": "QueryUpdated",
                "queryId": 0,
                "value": [{"body": "hi"}],
                "logLines": [],
                "journal": None,
            },
            {
                "type": "QueryFailed",
                "queryId": 1,
                "errorMessage": "Uncaught ConvexError: {}",
                "logLines": [],
                "journal": None,
                "errorData": {"code": "UNAUTHENTICATED"},
            },
            {"type": "QueryRemoved", "queryId": 3},
        ],
        "clientClockSkew": 12,
        "serverTs": 1795908379159000000,
    }


def test_transition_leaves_out_optional_fields_by_default() -> None:
    data = json.loads(transition(INITIAL, INITIAL, []))
    assert data == {
        "type": "Transition",
        "startVersion": INITIAL.to_json(),
        "endVersion": INITIAL.to_json(),
        "modifications": [],
    }


def test_query_updated_does_not_re_encode_its_value() -> None:
    value_json = to_json({"big": Int64(5), "raw": b"\x00"})
    modification = query_updated(4, value_json, ["[LOG] 'hi'"], journal="j")
    assert modification["value"] == {"big": {"$integer": "BQAAAAAAAAA="}, "raw": {"$bytes": "AA=="}}
    assert modification["logLines"] == ["[LOG] 'hi'"]
    assert modification["journal"] == "j"


def test_query_failed_sends_error_data_only_when_given() -> None:
    plain = query_failed(1, "Server Error")
    assert "errorData" not in plain
    explicit_null = query_failed(1, "Uncaught ConvexError: null", None)
    assert "errorData" in explicit_null
    assert explicit_null["errorData"] is None
    assert '"errorData":null' in dumps(explicit_null)
    assert query_failed(1, "m", {"code": "X"}, ["[ERROR] x"], "j") == {
        "type": "QueryFailed",
        "queryId": 1,
        "errorMessage": "m",
        "logLines": ["[ERROR] x"],
        "journal": "j",
        "errorData": {"code": "X"},
    }


def test_mutation_responses_have_the_documented_shapes() -> None:
    assert json.loads(mutation_response_success(4, 3, 1, ["[LOG] 'sent'"])) == {
        "type": "MutationResponse",
        "requestId": 4,
        "success": True,
        "result": 3,
        "ts": "AQAAAAAAAAA=",
        "logLines": ["[LOG] 'sent'"],
    }
    data = {"code": "SENSITIVE_VERIFICATION_REQUIRED", "level": 3}
    failure = json.loads(mutation_response_failure(5, error_message_for(data), data))
    assert failure == {
        "type": "MutationResponse",
        "requestId": 5,
        "success": False,
        "result": 'Uncaught ConvexError: {"code":"SENSITIVE_VERIFICATION_REQUIRED","level":3}',
        "logLines": [],
        "errorData": data,
    }
    plain_failure = json.loads(mutation_response_failure(6, "Server Error"))
    assert "errorData" not in plain_failure
    assert "ts" not in plain_failure
    assert "errorData" in json.loads(mutation_response_failure(6, "m", None))


def test_action_responses_never_carry_ts() -> None:
    assert json.loads(action_response_success(7, {"$integer": "BQAAAAAAAAA="})) == {
        "type": "ActionResponse",
        "requestId": 7,
        "success": True,
        "result": {"$integer": "BQAAAAAAAAA="},
        "logLines": [],
    }
    failure = json.loads(action_response_failure(8, "boom", log_lines=["[WARN] w"]))
    assert failure == {
        "type": "ActionResponse",
        "requestId": 8,
        "success": False,
        "result": "boom",
        "logLines": ["[WARN] w"],
    }
    assert json.loads(action_response_failure(8, "m", {"a": 1}))["errorData"] == {"a": 1}


def test_auth_fatal_and_ping_messages() -> None:
    assert json.loads(auth_error("Token expired", 0, True)) == {
        "type": "AuthError",
        "error": "Token expired",
        "baseVersion": 0,
        "authUpdateAttempted": True,
    }
    assert json.loads(auth_error("expired", 2, False))["authUpdateAttempted"] is False
    assert json.loads(fatal_error("bye")) == {"type": "FatalError", "error": "bye"}
    assert ping() == '{"type":"Ping"}'


def test_every_encoder_sends_only_types_the_client_knows() -> None:
    texts = [
        transition(INITIAL, INITIAL, []),
        transition_from_parts(INITIAL, INITIAL, []),
        mutation_response_success(0, None, 0),
        mutation_response_failure(0, "m"),
        action_response_success(0, None),
        action_response_failure(0, "m"),
        auth_error("e", 0, True),
        fatal_error("e"),
        ping(),
    ]
    assert {json.loads(text)["type"] for text in texts} <= SERVER_TYPES


def test_error_message_for_matches_convex() -> None:
    assert error_message_for({"code": "X", "n": 1}) == 'Uncaught ConvexError: {"code":"X","n":1}'
    # JavaScript's ConvexError uses string data as its message unquoted.
    assert error_message_for("boom") == "Uncaught ConvexError: boom"
    assert error_message_for(None) == "Uncaught ConvexError: null"


versions = st.builds(
    StateVersion,
    st.integers(0, 2**53),
    st.integers(0, 2**53),
    st.integers(0, 2**64 - 1),
)
modifications = st.lists(
    st.one_of(
        st.builds(
            query_updated,
            st.integers(0, 2**53),
            json_values,
            st.lists(st.text(max_size=10), max_size=2),
            st.none() | st.text(max_size=10),
        ),
        st.builds(
            query_failed,
            st.integers(0, 2**53),
            st.text(max_size=20),
            json_values,
        ),
        st.builds(query_failed, st.integers(0, 2**53), st.text(max_size=20)),
        st.builds(query_removed, st.integers(0, 2**53)),
    ),
    max_size=5,
)


@settings(max_examples=200)
@given(
    versions,
    versions,
    modifications,
    st.none() | st.integers(-(2**63), 2**63 - 1),
    st.none() | st.integers(0, 2**63 - 1),
)
def test_transition_from_parts_equals_transition(
    start: StateVersion,
    end: StateVersion,
    mods: list[dict[str, Any]],
    skew: int | None,
    server_ts: int | None,
) -> None:
    whole = transition(start, end, mods, client_clock_skew=skew, server_ts=server_ts)
    spliced = transition_from_parts(
        start, end, [dumps(m) for m in mods], client_clock_skew=skew, server_ts=server_ts
    )
    assert json.loads(spliced) == json.loads(whole)
    assert spliced == whole


@pytest.mark.parametrize(
    ("skew", "server_ts"),
    [
        (12.0, None),
        (-1796154542140.455, None),
        (True, None),
        (2**63, None),
        (None, 1.5),
        (None, -1),
    ],
)
def test_transition_refuses_to_write_a_non_integer_skew_or_server_ts(
    skew: Any, server_ts: Any
) -> None:
    # The Rust client reads both as i64 and drops the whole Transition on a float: a server
    # bug must fail here, loudly, rather than on every client.
    with pytest.raises(ValueError, match="must be an integer"):
        transition(INITIAL, INITIAL, [], client_clock_skew=skew, server_ts=server_ts)
    with pytest.raises(ValueError, match="must be an integer"):
        transition_from_parts(INITIAL, INITIAL, [], client_clock_skew=skew, server_ts=server_ts)


def test_one_encoded_result_splices_into_many_transitions() -> None:
    shared = dumps(query_updated(9, to_json({"rows": [1, 2, 3]})))
    first = json.loads(transition_from_parts(INITIAL, StateVersion(1, 0, 5), [shared]))
    second = json.loads(
        transition_from_parts(StateVersion(2, 1, 4), StateVersion(2, 1, 5), [shared, shared])
    )
    assert first["modifications"] == [json.loads(shared)]
    assert second["modifications"] == [json.loads(shared)] * 2
    assert second["startVersion"]["ts"] == encode_ts(4)


@pytest.mark.parametrize("query_id", [0, 7, 2**31 - 1])
def test_a_shared_modification_is_the_encoder_s_own_message(query_id: int) -> None:
    """The coordinator encodes a shared query's result once and splices in each query id:
    the text must decode to exactly what the per-message encoders build."""
    from backend.sync.protocol import (
        query_failed,
        query_updated,
        shared_query_failed,
        shared_query_updated,
    )

    value = {"a": [1, "x", None]}
    shared = shared_query_updated(json.dumps(value), ["[LOG] hi"], "journal")
    assert json.loads(shared.for_query(query_id)) == query_updated(
        query_id, value, ["[LOG] hi"], "journal"
    )
    failed = shared_query_failed("Uncaught Error: no", json.dumps({"code": "X"}), [], None)
    assert json.loads(failed.for_query(query_id)) == query_failed(
        query_id, "Uncaught Error: no", {"code": "X"}
    )
    bare = shared_query_failed("Server Error")
    assert "errorData" not in json.loads(bare.for_query(query_id))
