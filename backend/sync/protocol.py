"""The messages of the WebSocket sync protocol, as the official ``convex`` client speaks them.

This module is pure: it turns one received frame into a typed ``ClientMessage`` (or raises
``ProtocolError``) and turns server events into JSON text ready to send. It knows nothing about
sockets, sessions or the database, so every rule here is tested without a network.

Parsing is strict because everything after it trusts the result: a field of the wrong type, an
integer the client could never have produced, or a value that is not Convex JSON is a broken or
hostile client, and the session answers it by closing the socket with ``ProtocolError.reason``
as the close reason. Fields the server does not use (``componentPath``, ``impersonating``,
telemetry payloads) are ignored rather than rejected, so a newer client keeps working.

Encoders return strings, not dicts, because a query result is often sent to many connections:
encode a modification once with ``dumps(query_updated(...))`` and splice the text into each
connection's Transition with ``transition_from_parts``.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Final, Literal, TypeAlias

from backend.errors import ConvexError
from backend.failures import uncaught_message
from backend.values.convex_json import JSONRejected, dumps, from_json, loads

JsonData: TypeAlias = Any
"""Plain JSON data already in Convex's encoding (the output of ``to_json``)."""

MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
MAX_MODIFICATIONS: Final = 1000
MAX_SESSION_ID_LENGTH: Final = 128
MAX_UDF_PATH_LENGTH: Final = 256
# A WebSocket close reason is at most 123 bytes and the client's own reasons are short; the cap
# only keeps a hostile client from filling the logs through this field.
MAX_CLOSE_REASON_LENGTH: Final = 1024
# Integers in client messages come from JavaScript numbers, so nothing above 2**53 is genuine.
MAX_CLIENT_INTEGER: Final = 2**53
# Convex's protocol types, as its Rust client (shared by the Python, Swift and Kotlin clients)
# reads them with serde: versions, query ids, request ids and connection counts are ``u32``;
# ``clientClockSkew`` and ``serverTs`` are ``i64``. A float (even ``12.0``) or a value out of
# range fails the whole message, and that client then drops the socket and reconnects. So the
# parser takes those fields only as integers within ``u32`` (what Convex's backend accepts too),
# the values the server echoes back (querySet, queryId, requestId) stay within it, and the
# ``i64`` fields are checked as they are written.
U32_MAX: Final = 2**32 - 1
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1
_U64_MAX: Final = 2**64 - 1


class ProtocolErrorReason(StrEnum):
    """Why a client message was refused; each value doubles as a WebSocket close reason."""

    MALFORMED_MESSAGE = "MalformedMessage"
    UNKNOWN_MESSAGE_TYPE = "UnknownMessageType"
    MESSAGE_TOO_LARGE = "MessageTooLarge"
    INVALID_ARGS = "InvalidArgs"
    INVALID_VERSION = "InvalidVersion"
    TOO_MANY_MODIFICATIONS = "TooManyModifications"


class ProtocolError(Exception):
    """A client message that breaks the protocol; the session closes the socket with ``reason``.

    ``message`` is for logs and never quotes more than a few dozen characters of client input.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


_MALFORMED = ProtocolErrorReason.MALFORMED_MESSAGE


# --- Timestamps and versions -------------------------------------------------------------------


def encode_ts(ts: int) -> str:
    """A u64 timestamp as the client wants it: standard base64 of 8 little-endian bytes.

    Raises ``ValueError`` for anything outside 0..2**64-1 (a server bug, not a client error).
    """
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= _U64_MAX:
        raise ValueError(f"timestamp must be an integer in 0..2**64-1, got {ts!r}")
    return base64.b64encode(struct.pack("<Q", ts)).decode("ascii")


def decode_ts(text: object) -> int:
    """The u64 timestamp in ``text``; raises ``ProtocolError`` unless it is base64 of 8 bytes."""
    if not isinstance(text, str):
        raise ProtocolError(_MALFORMED, f"timestamp must be a base64 string, got {_kind(text)}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        raise ProtocolError(_MALFORMED, "timestamp is not valid base64") from exc
    if len(raw) != 8:
        raise ProtocolError(_MALFORMED, f"timestamp must hold 8 bytes, not {len(raw)}")
    value: int = struct.unpack("<Q", raw)[0]
    return value


@dataclass(frozen=True)
class StateVersion:
    """The ``{querySet, identity, ts}`` triple that Transitions chain from and to."""

    query_set: int
    identity: int
    ts: int

    def __post_init__(self) -> None:
        for name in ("query_set", "identity", "ts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"StateVersion.{name} must be a non-negative int, got {value!r}")
        if self.ts > _U64_MAX:
            raise ValueError("StateVersion.ts must fit in an unsigned 64-bit integer")

    def to_json(self) -> dict[str, Any]:
        """The wire form, with ``ts`` base64-encoded."""
        return {"querySet": self.query_set, "identity": self.identity, "ts": encode_ts(self.ts)}


INITIAL: Final = StateVersion(0, 0, 0)
"""What the client assumes the server has sent on every new socket."""


# --- Client messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """The first message on every socket; the server stores the session and replies nothing."""

    session_id: str
    connection_count: int
    last_close_reason: str | None
    max_observed_timestamp: int | None
    client_ts: int | None
    """The client's clock in ms (the Rust client always sends 0); an integer, as Convex's
    ``i64`` type says: a fractional value is refused like any other ill-typed field."""


@dataclass(frozen=True)
class AddQuery:
    """Subscribe ``query_id`` to ``udf_path`` with decoded ``args``."""

    query_id: int
    udf_path: str
    args: dict[str, Any]
    journal: str | None


@dataclass(frozen=True)
class RemoveQuery:
    """Unsubscribe ``query_id``."""

    query_id: int


QueryModification: TypeAlias = AddQuery | RemoveQuery


@dataclass(frozen=True)
class ModifyQuerySet:
    """A batch of subscription changes, answered by a Transition to ``new_version``."""

    base_version: int
    new_version: int
    modifications: tuple[QueryModification, ...]


@dataclass(frozen=True)
class Mutation:
    """Run a mutation; ``(session_id, request_id)`` identifies it across reconnects."""

    request_id: int
    udf_path: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Action:
    """Run an action; unlike mutations, actions are never resent after a reconnect."""

    request_id: int
    udf_path: str
    args: dict[str, Any]


TokenType: TypeAlias = Literal["User", "None", "Admin"]


@dataclass(frozen=True)
class Authenticate:
    """Set (``User``/``Admin``, with ``value``) or clear (``None``) the connection's identity."""

    token_type: TokenType
    value: str | None
    base_version: int


@dataclass(frozen=True)
class Event:
    """Client telemetry, to be ignored."""

    event_type: str


ClientMessage: TypeAlias = Connect | ModifyQuerySet | Mutation | Action | Authenticate | Event


def _kind(value: object) -> str:
    """A type name for error messages, so client input is described rather than echoed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Fields:
    """Typed, validating reads of one JSON object's fields; ``where`` names it in errors."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self._data = data
        self._where = where

    def _fail(self, name: str, expected: str, value: object) -> ProtocolError:
        return ProtocolError(
            _MALFORMED, f"{self._where}.{name} must be {expected}, got {_kind(value)}"
        )

    def _required(self, name: str) -> Any:
        if name not in self._data:
            raise ProtocolError(_MALFORMED, f"{self._where} is missing {name!r}")
        return self._data[name]

    def integer(self, name: str) -> int:
        value = self._required(name)
        # bool is an int subclass and 1.0 is a float: neither is what the client sends.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, "an integer", value)
        if not 0 <= value <= U32_MAX:
            raise ProtocolError(_MALFORMED, f"{self._where}.{name} is out of range")
        return value

    def string(self, name: str, *, max_length: int | None = None, non_empty: bool = False) -> str:
        value = self._required(name)
        if not isinstance(value, str):
            raise self._fail(name, "a string", value)
        if max_length is not None and len(value) > max_length:
            raise ProtocolError(
                _MALFORMED, f"{self._where}.{name} is longer than {max_length} characters"
            )
        if non_empty and not value:
            raise ProtocolError(_MALFORMED, f"{self._where}.{name} must not be empty")
        return value

    def optional_string(self, name: str, *, max_length: int | None = None) -> str | None:
        """A string, or ``None`` when the field is absent or ``null``."""
        if self._data.get(name) is None:
            return None
        return self.string(name, max_length=max_length)

    def optional_timestamp(self, name: str) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        try:
            return decode_ts(value)
        except ProtocolError as exc:
            raise ProtocolError(exc.reason, f"{self._where}.{name}: {exc.message}") from exc

    def optional_signed_integer(self, name: str) -> int | None:
        """An integer in the safe range (either sign), or ``None`` when absent or ``null``."""
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, "an integer", value)
        if not -MAX_CLIENT_INTEGER <= value <= MAX_CLIENT_INTEGER:
            raise ProtocolError(_MALFORMED, f"{self._where}.{name} is out of range")
        return value

    def array(self, name: str) -> list[Any]:
        value = self._required(name)
        if not isinstance(value, list):
            raise self._fail(name, "an array", value)
        return value

    def args(self) -> dict[str, Any]:
        """The ``args: [<encoded object>]`` wrapper, unwrapped and decoded."""
        wrapped = self._required("args")
        if not isinstance(wrapped, list) or len(wrapped) != 1:
            raise ProtocolError(
                ProtocolErrorReason.INVALID_ARGS,
                f"{self._where}.args must be an array holding one object",
            )
        if not isinstance(wrapped[0], dict):
            raise ProtocolError(
                ProtocolErrorReason.INVALID_ARGS,
                f"{self._where}.args[0] must be an object, got {_kind(wrapped[0])}",
            )
        try:
            value = from_json(wrapped[0])
        except ConvexError as exc:
            raise ProtocolError(
                ProtocolErrorReason.INVALID_ARGS, f"{self._where}.args: {exc.message[:100]}"
            ) from exc
        # {"$bytes": ...} is a JSON object but decodes to bytes, not to an args object.
        if not isinstance(value, dict):
            raise ProtocolError(
                ProtocolErrorReason.INVALID_ARGS, f"{self._where}.args[0] must encode an object"
            )
        return value


def _parse_connect(fields: _Fields) -> Connect:
    return Connect(
        # An empty id would make unrelated clients share mutation idempotency keys.
        session_id=fields.string("sessionId", max_length=MAX_SESSION_ID_LENGTH, non_empty=True),
        connection_count=fields.integer("connectionCount"),
        last_close_reason=fields.optional_string(
            "lastCloseReason", max_length=MAX_CLOSE_REASON_LENGTH
        ),
        max_observed_timestamp=fields.optional_timestamp("maxObservedTimestamp"),
        client_ts=fields.optional_signed_integer("clientTs"),
    )


def _parse_query_modification(data: object, index: int) -> QueryModification:
    where = f"modifications[{index}]"
    if not isinstance(data, dict):
        raise ProtocolError(_MALFORMED, f"{where} must be an object, got {_kind(data)}")
    fields = _Fields(data, where)
    kind = fields.string("type")
    if kind == "Add":
        return AddQuery(
            query_id=fields.integer("queryId"),
            udf_path=fields.string("udfPath", max_length=MAX_UDF_PATH_LENGTH),
            args=fields.args(),
            journal=fields.optional_string("journal"),
        )
    if kind == "Remove":
        return RemoveQuery(query_id=fields.integer("queryId"))
    raise ProtocolError(_MALFORMED, f"{where}.type must be 'Add' or 'Remove'")


def _parse_modify_query_set(fields: _Fields, max_modifications: int) -> ModifyQuerySet:
    base_version = fields.integer("baseVersion")
    new_version = fields.integer("newVersion")
    if new_version != base_version + 1:
        raise ProtocolError(
            ProtocolErrorReason.INVALID_VERSION,
            f"newVersion must be baseVersion + 1 (got {base_version} -> {new_version})",
        )
    raw = fields.array("modifications")
    if len(raw) > max_modifications:
        raise ProtocolError(
            ProtocolErrorReason.TOO_MANY_MODIFICATIONS,
            f"{len(raw)} query set modifications in one message (limit {max_modifications})",
        )
    return ModifyQuerySet(
        base_version=base_version,
        new_version=new_version,
        modifications=tuple(_parse_query_modification(m, i) for i, m in enumerate(raw)),
    )


def _parse_mutation(fields: _Fields) -> Mutation:
    return Mutation(
        request_id=fields.integer("requestId"),
        udf_path=fields.string("udfPath", max_length=MAX_UDF_PATH_LENGTH),
        args=fields.args(),
    )


def _parse_action(fields: _Fields) -> Action:
    return Action(
        request_id=fields.integer("requestId"),
        udf_path=fields.string("udfPath", max_length=MAX_UDF_PATH_LENGTH),
        args=fields.args(),
    )


def _parse_authenticate(fields: _Fields) -> Authenticate:
    kind = fields.string("tokenType")
    base_version = fields.integer("baseVersion")
    match kind:
        case "None":
            # clearAuth() sends no value; a stray one is harmless and carries no meaning.
            return Authenticate("None", None, base_version)
        case "User" | "Admin":
            return Authenticate(kind, fields.string("value"), base_version)
    raise ProtocolError(_MALFORMED, "Authenticate.tokenType must be 'User', 'None' or 'Admin'")


def _parse_event(fields: _Fields) -> Event:
    return Event(event_type=fields.string("eventType"))


_KNOWN_TYPES: Final = frozenset(
    {"Connect", "ModifyQuerySet", "Mutation", "Action", "Authenticate", "Event"}
)


def _decode_frame(raw: str | bytes, max_bytes: int) -> Any:
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw)
        if len(raw) > max_bytes:
            raise ProtocolError(ProtocolErrorReason.MESSAGE_TOO_LARGE, _too_large(max_bytes))
        try:
            # Decode explicitly: json.loads(bytes) would also guess UTF-16 and UTF-32.
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(_MALFORMED, "binary frame is not UTF-8 text") from exc
    elif isinstance(raw, str):
        text = raw
        # UTF-8 needs at least one byte per character, so only long texts need the exact count.
        if len(text) > max_bytes or (
            len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes
        ):
            raise ProtocolError(ProtocolErrorReason.MESSAGE_TOO_LARGE, _too_large(max_bytes))
    else:
        raise TypeError(f"a frame is str or bytes, not {type(raw).__name__}")
    try:
        # the strict decoder HTTP bodies use too: depth, lone surrogates, NaN, repeated keys
        return loads(text)
    except JSONRejected as exc:
        raise ProtocolError(_MALFORMED, f"message {exc.reason}") from exc


def _too_large(max_bytes: int) -> str:
    return f"message is larger than {max_bytes} bytes"


def parse_client_message(
    raw: str | bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_modifications: int = MAX_MODIFICATIONS,
) -> ClientMessage:
    """Validate one frame from the client and return it as a typed message.

    Raises ``ProtocolError`` whose ``reason`` is a ``ProtocolErrorReason``:
    ``MessageTooLarge`` (over ``max_bytes``), ``MalformedMessage`` (not a JSON object, or a
    field missing or of the wrong type), ``UnknownMessageType``, ``InvalidArgs`` (``args`` not a
    one-element array holding a Convex-encoded object), ``InvalidVersion`` (``newVersion`` is
    not ``baseVersion + 1``) or ``TooManyModifications`` (over ``max_modifications``).
    """
    data = _decode_frame(raw, max_bytes)
    if not isinstance(data, dict):
        raise ProtocolError(_MALFORMED, f"message must be a JSON object, got {_kind(data)}")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(_MALFORMED, f"message.type must be a string, got {_kind(kind)}")
    if kind not in _KNOWN_TYPES:
        raise ProtocolError(
            ProtocolErrorReason.UNKNOWN_MESSAGE_TYPE, f"unknown message type {kind[:40]!r}"
        )
    fields = _Fields(data, kind)
    if kind == "Connect":
        return _parse_connect(fields)
    if kind == "ModifyQuerySet":
        return _parse_modify_query_set(fields, max_modifications)
    if kind == "Mutation":
        return _parse_mutation(fields)
    if kind == "Action":
        return _parse_action(fields)
    if kind == "Authenticate":
        return _parse_authenticate(fields)
    return _parse_event(fields)


# --- Server messages ---------------------------------------------------------------------------


class _Missing(Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""The default ``error_data_json``: leave ``errorData`` out, so the client raises a plain Error."""


def _with_error_data(message: dict[str, Any], error_data_json: JsonData | _Missing) -> None:
    # Presence is the signal: even ``"errorData": null`` makes the client raise ConvexError.
    if error_data_json is not MISSING:
        message["errorData"] = error_data_json


def query_updated(
    query_id: int,
    value_json: JsonData,
    log_lines: Iterable[str] = (),
    journal: str | None = None,
) -> dict[str, Any]:
    """A ``QueryUpdated`` modification; ``value_json`` is already Convex JSON (from ``to_json``)."""
    return {
        "type": "QueryUpdated",
        "queryId": query_id,
        "value": value_json,
        "logLines": list(log_lines),
        "journal": journal,
    }


def query_failed(
    query_id: int,
    error_message: str,
    error_data_json: JsonData | _Missing = MISSING,
    log_lines: Iterable[str] = (),
    journal: str | None = None,
) -> dict[str, Any]:
    """A ``QueryFailed`` modification; pass ``error_data_json`` only for a ConvexError."""
    modification: dict[str, Any] = {
        "type": "QueryFailed",
        "queryId": query_id,
        "errorMessage": error_message,
        "logLines": list(log_lines),
        "journal": journal,
    }
    _with_error_data(modification, error_data_json)
    return modification


def query_removed(query_id: int) -> dict[str, Any]:
    """A ``QueryRemoved`` modification."""
    return {"type": "QueryRemoved", "queryId": query_id}


@dataclass(frozen=True)
class SharedModification:
    """A ``QueryUpdated`` or ``QueryFailed`` encoded once and sent under many query ids (one
    query shared by many subscriptions, whose fan-out would otherwise encode the same value
    once per subscriber): the message's JSON with its ``queryId`` left open."""

    prefix: str
    suffix: str

    def for_query(self, query_id: int) -> str:
        return f"{self.prefix}{query_id}{self.suffix}"


def shared_query_updated(
    value_text: str, log_lines: Iterable[str] = (), journal: str | None = None
) -> SharedModification:
    """``query_updated`` for any query id; ``value_text`` is the value's Convex JSON, encoded."""
    lines, journal_text = dumps(list(log_lines)), dumps(journal)
    return SharedModification(
        '{"type":"QueryUpdated","queryId":',
        f',"value":{value_text},"logLines":{lines},"journal":{journal_text}}}',
    )


def shared_query_failed(
    error_message: str,
    error_data_text: str | None = None,
    log_lines: Iterable[str] = (),
    journal: str | None = None,
) -> SharedModification:
    """``query_failed`` for any query id; ``error_data_text`` is a ConvexError's data, encoded
    (None for any other error: no ``errorData`` at all)."""
    lines, journal_text = dumps(list(log_lines)), dumps(journal)
    extra = "" if error_data_text is None else f',"errorData":{error_data_text}'
    return SharedModification(
        '{"type":"QueryFailed","queryId":',
        f',"errorMessage":{dumps(error_message)},"logLines":{lines},"journal":{journal_text}'
        f"{extra}}}",
    )


def encode_modification(modification: dict[str, Any]) -> str:
    """One modification (``query_updated``, ``query_failed``, ``query_removed``) as the text
    a Transition carries."""
    return dumps(modification)


def _wire_integer(name: str, value: int, low: int, high: int) -> int:
    """``value`` if it is an ``int`` in ``low..high``; anything else is a server bug."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _transition_tail(client_clock_skew: int | None, server_ts: int | None) -> dict[str, Any]:
    tail: dict[str, Any] = {}
    if client_clock_skew is not None:
        tail["clientClockSkew"] = _wire_integer(
            "clientClockSkew", client_clock_skew, I64_MIN, I64_MAX
        )
    if server_ts is not None:
        tail["serverTs"] = _wire_integer("serverTs", server_ts, 0, I64_MAX)
    return tail


def transition(
    start: StateVersion,
    end: StateVersion,
    modifications: Sequence[dict[str, Any]],
    *,
    client_clock_skew: int | None = None,
    server_ts: int | None = None,
) -> str:
    """A ``Transition`` from ``start`` to ``end`` (``start`` must be the last ``end`` sent)."""
    return dumps(
        {
            "type": "Transition",
            "startVersion": start.to_json(),
            "endVersion": end.to_json(),
            "modifications": list(modifications),
            **_transition_tail(client_clock_skew, server_ts),
        }
    )


def transition_from_parts(
    start: StateVersion,
    end: StateVersion,
    modification_json_texts: Iterable[str],
    *,
    client_clock_skew: int | None = None,
    server_ts: int | None = None,
) -> str:
    """The same text as ``transition``, spliced from modifications encoded once beforehand.

    Each text must be one JSON object, e.g. ``dumps(query_updated(...))``; it is not re-parsed.
    This is the fan-out path (one Transition per subscriber per commit), so it is built with
    string formatting rather than a JSON encoder.
    """
    tail = dumps(_transition_tail(client_clock_skew, server_ts))
    return "".join(
        (
            '{"type":"Transition","startVersion":',
            _version_text(start),
            ',"endVersion":',
            _version_text(end),
            ',"modifications":[',
            ",".join(modification_json_texts),
            "]",
            "}" if tail == "{}" else "," + tail[1:],
        )
    )


def _version_text(version: StateVersion) -> str:
    # Exactly what dumps(version.to_json()) writes: keys in this order, no spaces.
    return (
        f'{{"querySet":{version.query_set},"identity":{version.identity},'
        f'"ts":"{encode_ts(version.ts)}"}}'
    )


def mutation_response_success(
    request_id: int, result_json: JsonData, ts: int, log_lines: Iterable[str] = ()
) -> str:
    """A successful ``MutationResponse``; ``ts`` is the commit timestamp."""
    return dumps(
        {
            "type": "MutationResponse",
            "requestId": request_id,
            "success": True,
            "result": result_json,
            "ts": encode_ts(ts),
            "logLines": list(log_lines),
        }
    )


def _failure(
    kind: str,
    request_id: int,
    error_message: str,
    error_data_json: JsonData | _Missing,
    log_lines: Iterable[str],
) -> str:
    # On failure ``result`` carries the message text, and there is never a ``ts``.
    message: dict[str, Any] = {
        "type": kind,
        "requestId": request_id,
        "success": False,
        "result": error_message,
        "logLines": list(log_lines),
    }
    _with_error_data(message, error_data_json)
    return dumps(message)


def mutation_response_failure(
    request_id: int,
    error_message: str,
    error_data_json: JsonData | _Missing = MISSING,
    log_lines: Iterable[str] = (),
) -> str:
    """A failed ``MutationResponse``; pass ``error_data_json`` only for a ConvexError."""
    return _failure("MutationResponse", request_id, error_message, error_data_json, log_lines)


def action_response_success(
    request_id: int, result_json: JsonData, log_lines: Iterable[str] = ()
) -> str:
    """A successful ``ActionResponse`` (actions have no commit timestamp)."""
    return dumps(
        {
            "type": "ActionResponse",
            "requestId": request_id,
            "success": True,
            "result": result_json,
            "logLines": list(log_lines),
        }
    )


def action_response_failure(
    request_id: int,
    error_message: str,
    error_data_json: JsonData | _Missing = MISSING,
    log_lines: Iterable[str] = (),
) -> str:
    """A failed ``ActionResponse``; pass ``error_data_json`` only for a ConvexError."""
    return _failure("ActionResponse", request_id, error_message, error_data_json, log_lines)


def auth_error(error: str, base_version: int, auth_update_attempted: bool) -> str:
    """An ``AuthError``; ``base_version`` is the identity version before the failed change."""
    return dumps(
        {
            "type": "AuthError",
            "error": error,
            "baseVersion": base_version,
            "authUpdateAttempted": auth_update_attempted,
        }
    )


def fatal_error(error: str) -> str:
    """A ``FatalError``: the client closes for good and never reconnects, so use it sparingly."""
    return dumps({"type": "FatalError", "error": error})


def ping() -> str:
    """A ``Ping``, which only resets the client's 60-second inactivity timer."""
    return '{"type":"Ping"}'


def error_message_for(error_data_json: JsonData) -> str:
    """The ``errorMessage`` text for a ConvexError, in Convex's ``Uncaught ConvexError: ...`` form.

    Like the JavaScript ``ConvexError``, string data is used as is and anything else as JSON:
    the words of every transport (``backend/failures.py``).
    """
    return uncaught_message(error_data_json)
