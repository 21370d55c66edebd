"""The fast paths of the value code agree with the careful ones they stand in for.

``to_json``/``from_json`` run a walk without error paths first and fall back to the checked
walk; ``decode_stored`` skips every check for text we wrote ourselves; ``encode_value`` takes
shortcuts for common types. Each must give exactly what the careful version gives (the same
value of the same type, the same error, the same key bytes: keys are stored).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.errors import ConvexError
from backend.values.convex_json import (
    Int64,
    _from_json_checked,
    _to_json_checked,
    check_field_name,
    decode,
    decode_stored,
    dumps,
    encode,
    from_json,
    to_json,
)
from backend.values.index_key import MISSING, encode_key, encode_value

field_names = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=8
).filter(lambda s: not s.startswith("$"))
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats()  # NaN, infinities and -0.0 included
    | st.builds(Int64, st.integers(-(2**63), 2**63 - 1))
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(field_names, children, max_size=4)
    ),
    max_leaves=25,
)
# Anything at all, Convex values or not: for comparing the two walks, errors included.
anything = st.recursive(
    scalars
    | st.integers()
    | st.just(MISSING)
    | st.builds(bytearray, st.binary(max_size=4))
    | st.builds(object),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), children, max_size=3)
    ),
    max_leaves=12,
)
json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(
        [
            {"$integer": "BQAAAAAAAAA="},
            {"$integer": "AAA="},
            {"$float": "AAAAAAAA+H8="},
            {"$float": "AAAAAAAA8D8="},
            {"$bytes": "AAE="},
            {"$bytes": "not base64!"},
            {"$bytes": 5},
            {"$weird": 1},
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (NaN equals NaN, -0.0 differs from 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "value", fn(*args, **kwargs)
    except ConvexError as exc:
        return "error", (exc.code, exc.message, exc.data)


@settings(max_examples=400)
@given(values)
def test_decode_stored_reads_back_every_value_exactly(value: Any) -> None:
    text = encode(value)
    assert _same(decode_stored(text), decode(text))
    assert _same(decode_stored(text), decode(encode(decode_stored(text))))


def test_decode_stored_refuses_anything_after_the_value() -> None:
    assert decode_stored('{"a":1}') == {"a": 1}
    for trailing in ('{"a":1}x', '{"a":1} '):
        with pytest.raises(ValueError, match="extra data"):
            decode_stored(trailing)
    for malformed in ("", "[1"):
        with pytest.raises(json.JSONDecodeError):
            decode_stored(malformed)


@settings(max_examples=400)
@given(anything, st.integers(0, 4))
def test_to_json_agrees_with_the_checked_walk(value: Any, max_depth: int) -> None:
    fast = _outcome(to_json, value, max_depth=max_depth)
    careful = _outcome(_to_json_checked, value, max_depth, "", 0)
    assert fast[0] == careful[0]
    if fast[0] == "value":
        assert _same(fast[1], careful[1])
    else:
        assert fast[1] == careful[1]  # the same code, message and path


@settings(max_examples=400)
@given(json_data, st.integers(0, 4))
def test_from_json_agrees_with_the_checked_walk(data: Any, max_depth: int) -> None:
    fast = _outcome(from_json, data, max_depth=max_depth)
    careful = _outcome(_from_json_checked, data, max_depth, "", 0)
    assert fast[0] == careful[0]
    if fast[0] == "value":
        assert _same(fast[1], careful[1])
    else:
        assert fast[1] == careful[1]


def test_errors_still_name_the_path() -> None:
    with pytest.raises(ConvexError) as info:
        to_json({"a": [1, {"b": 2**60}]})
    assert info.value.data["path"] == "a[1].b"
    with pytest.raises(ConvexError) as info:
        from_json({"a": [{"$bytes": "!!"}]})
    assert info.value.data["path"] == "a[0]"
    with pytest.raises(ConvexError) as info:
        to_json({"x": {"bad key": {"$no": 1}}})
    assert info.value.data["path"] == "x.bad key.$no"


def test_field_names_are_exactly_printable_ascii() -> None:
    for code in range(160):
        name = "a" + chr(code)
        if 32 <= code <= 126:
            assert check_field_name(name) == name
            assert to_json({name: 1}) == {name: 1}
        else:
            with pytest.raises(ConvexError):
                check_field_name(name)
            with pytest.raises(ConvexError):
                to_json({name: 1})
    assert check_field_name("") == ""
    assert check_field_name("x" * 1024)
    for bad in ("$x", "x" * 1025, 5):
        with pytest.raises(ConvexError):
            check_field_name(bad)


def test_dumps_is_compact_and_strict() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps(math.nan)


# ---- index keys --------------------------------------------------------------------------


def _reference_key(value: Any) -> bytes:
    """The key encoding as first written (keys already stored were made by it)."""

    def escaped(data: bytes) -> bytes:
        return data.replace(b"\x00", b"\x00\xff") + b"\x00\x00"

    def number(x: float) -> bytes:
        if math.isnan(x):
            x = math.nan
        if x == 0.0:
            x = 0.0
        (bits,) = struct.unpack(">Q", struct.pack(">d", x))
        bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)
        return struct.pack(">Q", bits)

    if value is MISSING:
        return b"\x01"
    if value is None:
        return b"\x02"
    if value is True:
        return b"\x06"
    if value is False:
        return b"\x05"
    if isinstance(value, Int64):
        return b"\x03" + struct.pack(">Q", (int(value) + (1 << 63)) & ((1 << 64) - 1))
    if isinstance(value, int | float):
        return b"\x04" + number(float(value))
    if isinstance(value, str):
        return b"\x07" + escaped(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return b"\x08" + escaped(bytes(value))
    if isinstance(value, list | tuple):
        return b"\x09" + b"".join(b"\x01" + _reference_key(v) for v in value) + b"\x00"
    assert isinstance(value, dict)
    parts = [
        b"\x01" + escaped(k.encode("utf-8")) + _reference_key(v) for k, v in sorted(value.items())
    ]
    return b"\x0a" + b"".join(parts) + b"\x00"


@settings(max_examples=400)
@given(st.lists(values | st.just(MISSING), max_size=4))
def test_index_keys_are_byte_for_byte_the_reference_encoding(parts: list[Any]) -> None:
    assert encode_key(parts) == b"".join(_reference_key(v) for v in parts)
    for value in parts:
        assert encode_value(value) == _reference_key(value)
