"""Every server message, as the official clients deserialize it: a checker for recorded frames.

Derived from Convex's Rust client (``convex_sync_types`` 0.10.4, ``src/types/mod.rs`` and
``src/types/json.rs``: ``ServerMessageJson``, ``StateModificationJson``, ``StateVersionJson``),
which the Python, Swift and Kotlin clients share, and from the value rules both that client and
the JS one apply (``crates/convex/src/value/json``, ``convex/src/values/value.ts``). serde is
exact where JSON is loose: a ``u32`` or ``i64`` field holding ``12.0`` fails the whole message,
and the client then drops the socket and reconnects. So each field is checked for its exact
JSON type, integers for their Rust range, and ``Option`` fields for being absent or ``null``.
Fields the Rust types do not have are reported too (serde would ignore them; a typo would not
be noticed otherwise).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Callable
from typing import Any, Final

U32_MAX: Final = 2**32 - 1
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1

Check = Callable[[Any, str], list[str]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def u32(value: Any, where: str) -> list[str]:
    if not _is_int(value):
        return [f"{where}: u32 must be a JSON integer, got {value!r}"]
    return [] if 0 <= value <= U32_MAX else [f"{where}: {value} is out of u32 range"]


def i64(value: Any, where: str) -> list[str]:
    if not _is_int(value):
        return [f"{where}: i64 must be a JSON integer, got {value!r}"]
    return [] if I64_MIN <= value <= I64_MAX else [f"{where}: {value} is out of i64 range"]


def timestamp_i64(value: Any, where: str) -> list[str]:
    # serverTs: an i64 then Timestamp::try_from, which refuses negatives.
    problems = i64(value, where)
    if not problems and value < 0:
        problems.append(f"{where}: a Timestamp cannot be negative")
    return problems


def string(value: Any, where: str) -> list[str]:
    return [] if isinstance(value, str) else [f"{where}: must be a string, got {value!r}"]


def boolean(value: Any, where: str) -> list[str]:
    return [] if isinstance(value, bool) else [f"{where}: must be a boolean, got {value!r}"]


def encoded_ts(value: Any, where: str) -> list[str]:
    """A u64 as base64 of 8 little-endian bytes, at most ``Timestamp::MAX`` (i64::MAX)."""
    if not isinstance(value, str):
        return [f"{where}: a timestamp is a base64 string, got {value!r}"]
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return [f"{where}: not base64: {value!r}"]
    if len(raw) != 8:
        return [f"{where}: a timestamp holds 8 bytes, not {len(raw)}"]
    (number,) = struct.unpack("<Q", raw)
    return [] if number <= I64_MAX else [f"{where}: {number} is past Timestamp::MAX"]


def log_lines(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where}: logLines must be an array of strings, got {value!r}"]
    return [p for i, line in enumerate(value) for p in string(line, f"{where}[{i}]")]


def _bad_key(key: str) -> bool:
    # The JS client refuses these keys in a value; the Rust one refuses $set/$map/$-objects.
    return key.startswith("$") or len(key) > 1024 or not (key.isascii() and key.isprintable())


def value(data: Any, where: str) -> list[str]:
    """A Convex JSON value that both official clients decode."""
    if data is None or isinstance(data, bool | str):
        return []
    if isinstance(data, int):
        return [] if abs(data) <= 2**53 else [f"{where}: {data} loses precision as a float64"]
    if isinstance(data, float):
        return [] if math.isfinite(data) else [f"{where}: a non-finite number must be $float"]
    if isinstance(data, list):
        return [p for i, item in enumerate(data) for p in value(item, f"{where}[{i}]")]
    if not isinstance(data, dict):
        return [f"{where}: not JSON: {data!r}"]
    if len(data) == 1:
        ((key, inner),) = data.items()
        if key in ("$integer", "$float", "$bytes"):
            return _special(key, inner, where)
    problems = []
    for key, item in data.items():
        if _bad_key(key):
            problems.append(f"{where}: key {key!r} cannot be decoded by the clients")
        problems.extend(value(item, f"{where}.{key}"))
    return problems


def _special(key: str, inner: Any, where: str) -> list[str]:
    if not isinstance(inner, str):
        return [f"{where}.{key}: must be a base64 string"]
    try:
        raw = base64.b64decode(inner, validate=True)
    except (binascii.Error, ValueError):
        return [f"{where}.{key}: not base64"]
    if key == "$bytes":
        return []
    if len(raw) != 8:
        return [f"{where}.{key}: must hold 8 bytes"]
    if key == "$float":
        (number,) = struct.unpack("<d", raw)
        negative_zero = number == 0 and math.copysign(1.0, number) < 0
        if math.isfinite(number) and not negative_zero:
            return [f"{where}: {number} must be sent as a plain number, not $float"]
    return []


def state_version(data: Any, where: str) -> list[str]:
    return _object(
        data,
        where,
        {"querySet": (u32, True), "identity": (u32, True), "ts": (encoded_ts, True)},
    )


def _option(check: Check) -> Check:
    def optional(data: Any, where: str) -> list[str]:
        return [] if data is None else check(data, where)

    return optional


def _array_of(check: Check) -> Check:
    def array(data: Any, where: str) -> list[str]:
        if not isinstance(data, list):
            return [f"{where}: must be an array, got {data!r}"]
        return [p for i, item in enumerate(data) for p in check(item, f"{where}[{i}]")]

    return array


Fields = dict[str, tuple[Check, bool]]  # name -> (check, required)


def _object(data: Any, where: str, fields: Fields) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: must be an object, got {data!r}"]
    problems = []
    for name, (check, required) in fields.items():
        if name in data:
            problems.extend(check(data[name], f"{where}.{name}"))
        elif required:
            problems.append(f"{where}: missing {name!r}")
    extra = set(data) - set(fields) - {"type"}
    problems.extend(f"{where}: {name!r} is not in the Rust type" for name in sorted(extra))
    return problems


def _tagged(kinds: dict[str, Fields]) -> Check:
    def check(data: Any, where: str) -> list[str]:
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return [f"{where}: must be an object with a string type, got {data!r}"]
        fields = kinds.get(data["type"])
        if fields is None:
            return [f"{where}: unknown type {data['type']!r} (the clients fail on it)"]
        return _object(data, f"{where}<{data['type']}>", fields)

    return check


# StateModificationJson. journal is Option<String>; errorData is "present" (even null) or absent.
modification = _tagged(
    {
        "QueryUpdated": {
            "queryId": (u32, True),
            "value": (value, True),
            "logLines": (log_lines, True),
            "journal": (_option(string), False),
        },
        "QueryFailed": {
            "queryId": (u32, True),
            "errorMessage": (string, True),
            "logLines": (log_lines, True),
            "journal": (_option(string), False),
            "errorData": (value, False),
        },
        "QueryRemoved": {"queryId": (u32, True)},
    }
)


def _result(data: Any, where: str) -> list[str]:
    return value(data, where)


# ServerMessageJson.
server_message = _tagged(
    {
        "Transition": {
            "startVersion": (state_version, True),
            "endVersion": (state_version, True),
            "modifications": (_array_of(modification), True),
            "clientClockSkew": (_option(i64), False),
            "serverTs": (_option(timestamp_i64), False),
        },
        "MutationResponse": {
            "requestId": (u32, True),
            "success": (boolean, True),
            "result": (_result, True),
            "ts": (_option(encoded_ts), False),
            "logLines": (log_lines, True),
            "errorData": (value, False),
        },
        "ActionResponse": {
            "requestId": (u32, True),
            "success": (boolean, True),
            "result": (_result, True),
            "logLines": (log_lines, True),
            "errorData": (value, False),
        },
        "AuthError": {
            "error": (string, True),
            "baseVersion": (_option(u32), False),
            "authUpdateAttempted": (_option(boolean), False),
        },
        "FatalError": {"error": (string, True)},
        "TransitionChunk": {
            "chunk": (string, True),
            "partNumber": (u32, True),
            "totalParts": (u32, True),
            "transitionId": (string, True),
        },
        "Ping": {},
    }
)


def check_server_message(message: Any) -> list[str]:
    """What the official clients would refuse in one server message (empty: all is well)."""
    problems = server_message(message, "message")
    if isinstance(message, dict) and message.get("type") in ("MutationResponse", "ActionResponse"):
        success, result = message.get("success"), message.get("result")
        if success is False and not isinstance(result, str):
            problems.append("message.result: a failure's result is the error message string")
        if success is True and "errorData" in message:
            problems.append("message: errorData on a success")
        if message["type"] == "MutationResponse" and success is True and "ts" not in message:
            problems.append("message: a successful MutationResponse needs its commit ts")
    return problems
