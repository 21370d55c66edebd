"""Convex values and their JSON encoding, the one format used on the wire and on disk.

A Convex value is ``None``, ``bool``, a number (``int`` or ``float``), ``Int64`` (a 64-bit
integer that must travel as a JavaScript ``bigint``), ``str``, ``bytes``, a ``list`` of values
or a ``dict`` with ``str`` keys. Plain Python ``int`` values travel as JavaScript numbers, which
is what a JavaScript caller expects of a counter; an ``int`` outside the safe integer range
(±2**53) is refused rather than silently rounded, so use ``Int64`` or ``float`` for those.

Speed: every function result, argument and stored document goes through here, so the happy
path is kept cheap. ``to_json`` and ``from_json`` first try a fast walk that keeps no error
path; only when it meets something it does not accept does the checked walk run again from
the top, to name the path of the offending value in the error. ``decode_stored`` reads back
text that this module wrote itself without re-checking it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import re
import struct
from math import copysign, isfinite
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


def _is_plain_float(number: float) -> bool:
    """Whether a float travels as a JSON number (not NaN, not infinite, not -0)."""
    return math.isfinite(number) and not (number == 0.0 and math.copysign(1.0, number) < 0)


def _special_float(number: float) -> dict[str, str]:
    return {"$float": _b64(struct.pack("<d", number))}


def _field_name_ok(name: str) -> bool:
    # ``isascii() and isprintable()`` is exactly "every character in 32..126", in C.
    return (
        len(name) <= MAX_FIELD_NAME_LENGTH
        and name.isascii()
        and name.isprintable()
        and not name.startswith("$")
    )


def check_field_name(name: Any, path: str = "") -> str:
    """Raise ``INVALID_ARGUMENT`` unless ``name`` may be an object key in a Convex value."""
    if isinstance(name, str) and _field_name_ok(name):
        return name
    if not isinstance(name, str):
        raise _invalid("object keys must be strings", path)
    if name.startswith("$"):
        raise _invalid(f"field name {name[:40]!r} must not start with '$'", path)
    if len(name) > MAX_FIELD_NAME_LENGTH:
        raise _invalid("field name is longer than 1024 characters", path)
    raise _invalid(f"field name {name[:40]!r} must be printable ASCII", path)


# Field names already found good. Documents of one table share their field names, so nearly
# every check is one set lookup; the set stops growing at a bound (then names are re-checked).
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_BOUND = 4096


def _good_name(name: Any) -> bool:
    """Whether ``name`` is a good field name; remembers it (within the bound) if so."""
    if type(name) is not str or not _field_name_ok(name):
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_BOUND:
        _GOOD_NAMES.add(name)
    return True


class _Unusual(Exception):
    """A fast walk met something it does not accept: the checked walk decides and explains."""


# ---- Convex value -> JSON data -------------------------------------------------------------


def to_json(value: Value, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Convert a Convex value into plain JSON data in Convex's encoding.

    Raises ``ConvexError(INVALID_ARGUMENT)`` naming the path of a value that is not a Convex
    value, too deeply nested, or an object key the client would refuse.
    """
    if max_depth >= 0:
        try:
            return _to_plain(value, max_depth)
        except _Unusual:
            pass
    return _to_json_checked(value, max_depth, "", 0)


def _to_plain(value: Any, depth_left: int) -> Any:
    """``to_json`` without error paths; ``depth_left`` is how much deeper values may nest.

    Raises ``_Unusual`` wherever ``_to_json_checked`` would raise (and perhaps elsewhere).
    The common scalars of a container are converted inline, without a call of their own.
    """
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return value
    if cls is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
        raise _Unusual
    if cls is float:
        return value if _is_plain_float(value) else _special_float(value)
    if cls is dict or (cls is not list and isinstance(value, dict)):
        if not value:
            return {}
        if depth_left <= 0:
            raise _Unusual
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in _GOOD_NAMES and not _good_name(key):
                raise _Unusual
            kind = type(item)
            if (
                kind is str
                or kind is bool
                or item is None
                or (kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER)
                or (kind is float and isfinite(item) and (item or copysign(1.0, item) > 0.0))
            ):
                out[key] = item  # a scalar that is its own JSON (the float: finite, not -0)
            else:
                out[key] = _to_plain(item, depth_left - 1)
        return out
    if cls is list or isinstance(value, list | tuple):
        if not value:
            return []
        if depth_left <= 0:
            raise _Unusual
        items: list[Any] = []
        for item in value:
            kind = type(item)
            if (
                kind is str
                or kind is bool
                or item is None
                or (kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER)
            ):
                items.append(item)
            else:
                items.append(_to_plain(item, depth_left - 1))
        return items
    try:
        return _to_json_scalar(value, "")
    except ConvexError:
        raise _Unusual from None  # the checked walk raises it again, with its path


def _to_json_scalar(value: Any, path: str) -> Any:
    """A value that is not a container (subclasses of the plain types included)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Int64):
        return {"$integer": _b64(struct.pack("<q", value))}
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int(value)
        raise _invalid("integer is outside JavaScript's safe range; use Int64 or float", path)
    if isinstance(value, float):
        return value if _is_plain_float(value) else _special_float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": _b64(bytes(value))}
    raise _invalid(f"{type(value).__name__} is not a Convex value", path)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _to_json_checked(value: Value, max_depth: int, path: str, depth: int) -> Any:
    """``to_json`` keeping the path of every value, to name it in an error."""
    if depth > max_depth:
        raise _invalid(f"value is nested more than {max_depth} levels deep", path)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [
            _to_json_checked(item, max_depth, _join(path, i), depth + 1)
            for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            check_field_name(key, _join(path, key) if isinstance(key, str) else path)
            out[key] = _to_json_checked(item, max_depth, _join(path, key), depth + 1)
        return out
    return _to_json_scalar(value, path)


# ---- JSON data -> Convex value -------------------------------------------------------------


def from_json(data: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Value:
    """Convert JSON data in Convex's encoding into a Convex value.

    Raises ``ConvexError(INVALID_ARGUMENT)`` with the path of anything malformed.
    """
    if max_depth >= 0:
        try:
            return _from_plain(data, max_depth)
        except _Unusual:
            pass
    return _from_json_checked(data, max_depth, "", 0)


def _from_plain(data: Any, depth_left: int) -> Value:
    """``from_json`` without error paths; raises ``_Unusual`` where the checked walk might
    raise (and for every type it would accept only through ``isinstance``)."""
    cls = type(data)
    if cls is str or cls is bool or data is None:
        return data
    if cls is int:
        if -MAX_SAFE_INTEGER <= data <= MAX_SAFE_INTEGER:
            return data
        raise _Unusual  # read as a float, as JavaScript would, if one can hold it
    if cls is float:
        if math.isfinite(data):
            return data
        raise _Unusual
    if cls is list:
        if not data:
            return []
        if depth_left <= 0:
            raise _Unusual
        return [_from_plain(item, depth_left - 1) for item in data]
    if cls is dict:
        if len(data) == 1:
            ((key, inner),) = data.items()
            if type(key) is str and key.startswith("$"):
                try:
                    special = _from_special(key, inner, "")
                except ConvexError:
                    raise _Unusual from None  # the checked walk raises it again, with its path
                if special is not _NOT_SPECIAL:
                    return special
                raise _Unusual  # a '$' key is a bad field name
        if not data:
            return {}
        if depth_left <= 0:
            raise _Unusual
        out: dict[str, Value] = {}
        for key, item in data.items():
            if key not in _GOOD_NAMES and not _good_name(key):
                raise _Unusual
            kind = type(item)
            if kind is str or kind is bool or item is None:
                out[key] = item
            else:
                out[key] = _from_plain(item, depth_left - 1)
        return out
    raise _Unusual


_NOT_SPECIAL: Any = object()


def _from_special(key: str, inner: Any, path: str) -> Any:
    """Decode ``{"$integer" | "$float" | "$bytes": ...}``; ``_NOT_SPECIAL`` for other keys."""
    if key == "$integer":
        raw = _unb64(inner, path)
        if len(raw) != 8:
            raise _invalid("$integer must hold 8 bytes", path)
        return Int64(struct.unpack("<q", raw)[0])
    if key == "$float":
        raw = _unb64(inner, path)
        if len(raw) != 8:
            raise _invalid("$float must hold 8 bytes", path)
        number: float = struct.unpack("<d", raw)[0]
        if _is_plain_float(number):
            raise _invalid("$float is only for NaN, infinities and -0", path)
        return number
    if key == "$bytes":
        return _unb64(inner, path)
    return _NOT_SPECIAL


def _from_json_checked(data: Any, max_depth: int, path: str, depth: int) -> Value:
    """``from_json`` keeping the path of every value, to name it in an error."""
    if depth > max_depth:
        raise _invalid(f"value is nested more than {max_depth} levels deep", path)
    if data is None or isinstance(data, bool | str):
        return data
    if isinstance(data, int):
        if -MAX_SAFE_INTEGER <= data <= MAX_SAFE_INTEGER:
            return data
        try:
            return float(data)  # what JavaScript would have read for this literal
        except OverflowError:
            raise _invalid("number is beyond the range of a float", path) from None
    if isinstance(data, float):
        if not math.isfinite(data):
            raise _invalid("non-finite numbers must use the $float encoding", path)
        return data
    if isinstance(data, list):
        return [
            _from_json_checked(item, max_depth, _join(path, i), depth + 1)
            for i, item in enumerate(data)
        ]
    if isinstance(data, dict):
        if len(data) == 1:
            ((key, inner),) = data.items()
            special = _from_special(key, inner, path)
            if special is not _NOT_SPECIAL:
                return special
        out: dict[str, Value] = {}
        for key, item in data.items():
            check_field_name(key, _join(path, key) if isinstance(key, str) else path)
            out[key] = _from_json_checked(item, max_depth, _join(path, key), depth + 1)
        return out
    raise _invalid(f"{type(data).__name__} is not JSON", path)


# ---- text ------------------------------------------------------------------------------------
#
# ``loads`` is the one decoder of JSON text from outside (HTTP bodies, socket frames), and it
# is strict where Python's ``json`` is lenient, because everything after it trusts the data:
#
# - nesting deeper than ``MAX_JSON_DEPTH``: refused before parsing (Python's parser recurses,
#   and "[[[[..." of a few KB would otherwise end in a ``RecursionError``);
# - lone surrogates ("\ud800"): legal JSON escapes but not Unicode; Python would carry them
#   into a ``str`` that fails to encode as UTF-8 much later, mid-write or mid-send;
# - NaN and Infinity (a literal beyond a float's range, 1e400, reads as infinity: ``from_json``
#   refuses that as a bad argument, as it does any other non-finite number);
# - a key repeated in one object: parsers disagree on which one wins, and a proxy that checked
#   the first must not be overruled by a second it never saw;
# - bytes that are not UTF-8 (``json.loads`` would guess UTF-16 or UTF-32).
#
# The checks that cost something run only when the text could need them (a text with fewer
# brackets than the depth limit cannot nest past it; one without an escape cannot hold a lone
# surrogate), so a small frame pays for little more than the parse itself.

MAX_JSON_DEPTH = 2 * DEFAULT_MAX_DEPTH
"""How deeply JSON text may nest: a Convex value's own limit with room for any envelope."""


class JSONRejected(ValueError):
    """JSON text that ``loads`` refuses. ``reason`` completes "the body ..." or "the message
    ...", and never quotes the text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject_constant(_name: str) -> Any:
    raise JSONRejected("holds NaN or Infinity, which JSON does not have")


def _one_value_per_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JSONRejected("repeats a key in one object")
    return obj


# Built once: ``json.loads``/``json.dumps`` with options build a new coder on every call.
_STRICT_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_one_value_per_key
)
_COMPACT_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _nesting(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets inside strings do not count)."""
    # Without an escaped quote, every quote opens or closes a string, so what lies outside
    # strings is every other piece between quotes; with one, strings are matched properly.
    escaped = '\\"' in text
    outside = _STRING_LITERAL.sub("", text) if escaped else "".join(text.split('"')[::2])
    brackets = _NOT_A_BRACKET.sub("", outside)
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text strictly (see above). Raises ``JSONRejected``, a ``ValueError``."""
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise JSONRejected("is not UTF-8 text") from None
    if text.count("[") + text.count("{") > max_depth and _nesting(text) > max_depth:
        raise JSONRejected(f"is nested more than {max_depth} levels deep")
    try:
        data = _STRICT_DECODER.decode(text)
    except JSONRejected:
        raise
    except RecursionError:  # a depth check that missed: refuse all the same
        raise JSONRejected("is nested too deeply") from None
    except ValueError:
        raise JSONRejected("is not valid JSON") from None
    if not text.isascii():  # a surrogate itself in the text (only a Python caller can pass one)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JSONRejected("holds a lone surrogate, which is not Unicode") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):  # escaped: a pair is one character
        try:
            dumps(data).encode("utf-8")
        except UnicodeEncodeError:
            raise JSONRejected("holds a lone surrogate, which is not Unicode") from None
    return data


def dumps(data: Any) -> str:
    """Serialise plain JSON data compactly, as the wire and the store want it."""
    return _COMPACT_ENCODER.encode(data)


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


def _revive(obj: dict[str, Any]) -> Any:
    """The ``object_hook`` of ``decode_stored``: turns the special objects back into values.

    A one-key object whose key starts with ``$`` can only be one of them, because such keys
    are refused as field names.
    """
    if len(obj) == 1:
        ((key, inner),) = obj.items()
        if key == "$integer":
            return Int64(struct.unpack("<q", binascii.a2b_base64(inner))[0])
        if key == "$float":
            number: float = struct.unpack("<d", binascii.a2b_base64(inner))[0]
            return number
        if key == "$bytes":
            return binascii.a2b_base64(inner)
    return obj


_STORED_DECODER = json.JSONDecoder(object_hook=_revive)


def decode_stored(text: str) -> Value:
    """Decode text that ``encode`` produced (a stored document, a stored outcome).

    Unlike ``decode`` it does not re-check what ``to_json`` already checked when the text was
    written (field names, integer range, depth, the form of the special objects), so it must
    never be given text from outside.
    """
    # ``raw_decode`` skips ``decode``'s two whitespace scans (our own text has no whitespace
    # around the value); anything after the value is still refused
    value, end = _STORED_DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra data after a stored value")
    return value
