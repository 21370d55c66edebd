"""Convex values and their JSON encoding, the one format used on the wire and on disk.

A Convex value is ``None``, ``bool``, a number (``int`` or ``float``), ``Int64`` (a 64-bit
integer that must travel as a JavaScript ``bigint``), ``str``, ``bytes``, a ``list`` of values
or a ``dict`` with ``str`` keys. Plain Python ``int`` values travel as JavaScript numbers, which
is what a JavaScript caller expects of a counter; an ``int`` outside the safe integer range
(±2**53) is refused rather than silently rounded, so use ``Int64`` or ``float`` for those.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any, TypeAlias

from backend.errors import ConvexError, invalid_argument

Value: TypeAlias = Any
"""Any Convex value (see the module docstring); typed loosely because it is recursive."""

MAX_SAFE_INTEGER = 2**53 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_FIELD_NAME_LENGTH = 1024
DEFAULT_MAX_DEPTH = 64


class Int64(int):
    """An ``int`` that is sent to JavaScript as a ``bigint`` (``{"$integer": ...}``)."""

    def __new__(cls, value: int) -> Int64:
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{value} does not fit in a signed 64-bit integer")
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"Int64({int(self)})"


def _invalid(message: str, path: str = "") -> ConvexError:
    return invalid_argument(f"{path}: {message}" if path else message, path or None)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, path: str) -> bytes:
    if not isinstance(text, str):
        raise _invalid("expected a base64 string", path)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise _invalid("invalid base64", path) from exc


def check_field_name(name: Any, path: str = "") -> str:
    """Raise ``INVALID_ARGUMENT`` unless ``name`` may be an object key in a Convex value."""
    if not isinstance(name, str):
        raise _invalid("object keys must be strings", path)
    if name.startswith("$"):
        raise _invalid(f"field name {name[:40]!r} must not start with '$'", path)
    if len(name) > MAX_FIELD_NAME_LENGTH:
        raise _invalid("field name is longer than 1024 characters", path)
    if not all(32 <= ord(c) <= 126 for c in name):
        raise _invalid(f"field name {name[:40]!r} must be printable ASCII", path)
    return name


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def to_json(
    value: Value, *, max_depth: int = DEFAULT_MAX_DEPTH, _path: str = "", _depth: int = 0
) -> Any:
    """Convert a Convex value into plain JSON data in Convex's encoding.

    Raises ``ConvexError(INVALID_ARGUMENT)`` naming the path of a value that is not a Convex
    value, too deeply nested, or an object key the client would refuse.
    """
    if _depth > max_depth:
        raise _invalid(f"value is nested more than {max_depth} levels deep", _path)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Int64):
        return {"$integer": _b64(struct.pack("<q", value))}
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)
        raise _invalid("integer is outside JavaScript's safe range; use Int64 or float", _path)
    if isinstance(value, float):
        if math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0):
            return value
        return {"$float": _b64(struct.pack("<d", value))}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": _b64(bytes(value))}
    if isinstance(value, list | tuple):
        return [
            to_json(item, max_depth=max_depth, _path=_join(_path, i), _depth=_depth + 1)
            for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            check_field_name(key, _join(_path, str(key)) if isinstance(key, str) else _path)
            out[key] = to_json(
                item, max_depth=max_depth, _path=_join(_path, key), _depth=_depth + 1
            )
        return out
    raise _invalid(f"{type(value).__name__} is not a Convex value", _path)


def from_json(
    data: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, _path: str = "", _depth: int = 0
) -> Value:
    """Convert JSON data in Convex's encoding into a Convex value.

    Raises ``ConvexError(INVALID_ARGUMENT)`` with the path of anything malformed.
    """
    if _depth > max_depth:
        raise _invalid(f"value is nested more than {max_depth} levels deep", _path)
    if data is None or isinstance(data, bool | str):
        return data
    if isinstance(data, int):
        if -MAX_SAFE_INTEGER <= data <= MAX_SAFE_INTEGER:
            return data
        return float(data)  # what JavaScript would have read for this literal
    if isinstance(data, float):
        if not math.isfinite(data):
            raise _invalid("non-finite numbers must use the $float encoding", _path)
        return data
    if isinstance(data, list):
        return [
            from_json(item, max_depth=max_depth, _path=_join(_path, i), _depth=_depth + 1)
            for i, item in enumerate(data)
        ]
    if isinstance(data, dict):
        if len(data) == 1:
            ((key, inner),) = data.items()
            if key == "$integer":
                raw = _unb64(inner, _path)
                if len(raw) != 8:
                    raise _invalid("$integer must hold 8 bytes", _path)
                return Int64(struct.unpack("<q", raw)[0])
            if key == "$float":
                raw = _unb64(inner, _path)
                if len(raw) != 8:
                    raise _invalid("$float must hold 8 bytes", _path)
                number: float = struct.unpack("<d", raw)[0]
                if math.isfinite(number) and not (number == 0.0 and math.copysign(1.0, number) < 0):
                    raise _invalid("$float is only for NaN, infinities and -0", _path)
                return number
            if key == "$bytes":
                return _unb64(inner, _path)
        out: dict[str, Value] = {}
        for key, item in data.items():
            check_field_name(key, _join(_path, key) if isinstance(key, str) else _path)
            out[key] = from_json(
                item, max_depth=max_depth, _path=_join(_path, key), _depth=_depth + 1
            )
        return out
    raise _invalid(f"{type(data).__name__} is not JSON", _path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity literals). Raises ``ValueError``."""
    return json.loads(text, parse_constant=_reject_constant)


def dumps(data: Any) -> str:
    """Serialise plain JSON data compactly, as the wire and the store want it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(value: Value) -> str:
    """A Convex value as compact JSON text."""
    return dumps(to_json(value))


def decode(text: str | bytes) -> Value:
    """JSON text in Convex's encoding as a Convex value."""
    try:
        data = loads(text)
    except ValueError as exc:
        raise _invalid("malformed JSON") from exc
    return from_json(data)
