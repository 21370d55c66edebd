"""An order-preserving byte encoding of index keys, and key intervals.

Every index entry is stored under one ``bytes`` key, so that a ``with_index`` range becomes one
SQL range scan (SQLite and PostgreSQL both compare BLOB/BYTEA with memcmp) and one interval that
a subscription or a conflict check can test a written key against.

Each value starts with a type tag, so values of different types sort in Convex's order:
missing < null < Int64 < number < boolean < string < bytes < array < object. Numbers are IEEE
754 doubles with the sign bit flipped (and every bit flipped for negatives) so that the bytes
sort like the numbers. Strings and bytes escape 0x00 as 0x00 0xFF and end with 0x00 0x00, which
keeps every encoding prefix-free: a tuple of values is the concatenation of its parts.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.values.convex_json import Int64

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
"""Stands for an optional field that is absent from a document (Convex's ``undefined``)."""

_TAG_MISSING = 0x01
_TAG_NULL = 0x02
_TAG_INT64 = 0x03
_TAG_NUMBER = 0x04
_TAG_FALSE = 0x05
_TAG_TRUE = 0x06
_TAG_STRING = 0x07
_TAG_BYTES = 0x08
_TAG_ARRAY = 0x09
_TAG_OBJECT = 0x0A
_END = b"\x00\x00"


_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_SIGN = 1 << 63
_ALL_BITS = (1 << 64) - 1
# Encodings of the values that are their tag alone, and the tags as one-byte prefixes.
_MISSING_KEY = bytes([_TAG_MISSING])
_NULL_KEY = bytes([_TAG_NULL])
_TRUE_KEY = bytes([_TAG_TRUE])
_FALSE_KEY = bytes([_TAG_FALSE])
_INT64_PREFIX = bytes([_TAG_INT64])
_NUMBER_PREFIX = bytes([_TAG_NUMBER])
_STRING_PREFIX = bytes([_TAG_STRING])
_BYTES_PREFIX = bytes([_TAG_BYTES])
_ARRAY_PREFIX = bytes([_TAG_ARRAY])
_OBJECT_PREFIX = bytes([_TAG_OBJECT])


def _escaped(data: bytes) -> bytes:
    return data.replace(b"\x00", b"\x00\xff") + _END


def _number(value: float) -> bytes:
    if value != value:
        value = math.nan  # one canonical NaN, above +inf
    elif value == 0.0:
        value = 0.0  # -0 and 0 are the same key
    (bits,) = _U64.unpack(_DOUBLE.pack(value))
    return _U64.pack(bits ^ _ALL_BITS if bits & _SIGN else bits | _SIGN)


def encode_value(value: Any) -> bytes:
    """The sortable encoding of one Convex value (or ``MISSING``)."""
    # the common types first, by exact type (bool is not an int here: it has its own tags)
    cls = type(value)
    if cls is str:
        return _STRING_PREFIX + _escaped(value.encode("utf-8"))
    if cls is float or cls is int:
        return _NUMBER_PREFIX + _number(float(value))
    if value is MISSING:
        return _MISSING_KEY
    if value is None:
        return _NULL_KEY
    if value is True:
        return _TRUE_KEY
    if value is False:
        return _FALSE_KEY
    if isinstance(value, Int64):
        return _INT64_PREFIX + _U64.pack((int(value) + _SIGN) & _ALL_BITS)
    if isinstance(value, int | float):
        return _NUMBER_PREFIX + _number(float(value))
    if isinstance(value, str):
        return _STRING_PREFIX + _escaped(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return _BYTES_PREFIX + _escaped(bytes(value))
    if isinstance(value, list | tuple):
        return _ARRAY_PREFIX + b"".join([b"\x01" + encode_value(v) for v in value]) + b"\x00"
    if isinstance(value, dict):
        parts = [
            b"\x01" + _escaped(k.encode("utf-8")) + encode_value(v)
            for k, v in sorted(value.items())
        ]
        return _OBJECT_PREFIX + b"".join(parts) + b"\x00"
    raise TypeError(f"{type(value).__name__} cannot be part of an index key")


def encode_key(values: Sequence[Any]) -> bytes:
    """The sortable encoding of a tuple of values: compares like the tuple, element by element."""
    return b"".join([encode_value(v) for v in values])


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``prefix`` (None: unbounded)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class KeyRange:
    """The half-open key interval ``[start, end)``; ``end=None`` means unbounded above."""

    start: bytes = b""
    end: bytes | None = None

    def contains(self, key: bytes) -> bool:
        return self.start <= key and (self.end is None or key < self.end)

    def is_empty(self) -> bool:
        return self.end is not None and self.end <= self.start

    @classmethod
    def prefix(cls, prefix: bytes) -> KeyRange:
        return cls(prefix, prefix_end(prefix))

    @classmethod
    def everything(cls) -> KeyRange:
        return cls(b"", None)

    def intersect(self, other: KeyRange) -> KeyRange:
        start = max(self.start, other.start)
        if self.end is None:
            end = other.end
        elif other.end is None:
            end = self.end
        else:
            end = min(self.end, other.end)
        return KeyRange(start, end)
