import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.errors import ConvexError
from backend.values.convex_json import Int64, decode, encode, from_json, to_json

field_names = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=8
).filter(lambda s: not s.startswith("$"))
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False)
    | st.builds(Int64, st.integers(-(2**63), 2**63 - 1))
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(field_names, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(values)
def test_every_value_survives_a_round_trip(value: object) -> None:
    back = decode(encode(value))
    assert back == value or (isinstance(value, float) and math.isnan(value))
    assert type(back) is type(value) or isinstance(value, float | int)


def test_special_encodings_match_the_convex_client() -> None:
    assert to_json(Int64(5)) == {"$integer": "BQAAAAAAAAA="}
    assert to_json(Int64(-2)) == {"$integer": "/v////////8="}
    assert to_json(math.nan) == {"$float": "AAAAAAAA+H8="}
    assert to_json(b"\x00\x01") == {"$bytes": "AAE="}
    assert to_json(-0.0) == {"$float": "AAAAAAAAAIA="}
    assert to_json(5) == 5


@pytest.mark.parametrize(
    "data",
    [
        {"$float": "AAAAAAAA8D8="},  # 1.0 must travel as a plain number
        {"$integer": "AAA="},
        {"$set": []},
        {"a": {"$weird": 1}},
        {"bad\nkey": 1},
    ],
)
def test_malformed_encodings_are_invalid_arguments(data: object) -> None:
    with pytest.raises(ConvexError) as info:
        from_json(data)
    assert info.value.code == "INVALID_ARGUMENT"


def test_unsafe_integers_are_refused_not_rounded() -> None:
    with pytest.raises(ConvexError, match="safe range"):
        to_json(2**60)


def test_depth_limit_names_the_path() -> None:
    deep: object = 1
    for _ in range(70):
        deep = {"a": deep}
    with pytest.raises(ConvexError, match="nested more than 64"):
        to_json(deep)


def test_nan_literal_is_not_json() -> None:
    with pytest.raises(ConvexError):
        decode("NaN")


# ---- the strict decoder of JSON from outside -------------------------------------------------


def test_loads_nests_to_its_limit_and_not_one_level_more() -> None:
    from backend.values.convex_json import MAX_JSON_DEPTH, JSONRejected, loads

    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads(at_limit) is not None
    with pytest.raises(JSONRejected, match="nested more than"):
        loads("[" + at_limit + "]")
    with pytest.raises(JSONRejected, match="nested more than"):
        loads(b'{"a":' * 100_000)  # unclosed, and far past any recursion limit
    # brackets inside strings are text, not nesting (escaped quotes included)
    text = '["' + "[{" * 500 + '\\"]]"]'
    assert loads(text) == ["[{" * 500 + '"]]']


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('"\\ud800"', "lone surrogate"),
        ('{"\\udc00": 1}', "lone surrogate"),
        ('["\\ud83d\\ud83d"]', "lone surrogate"),
        ("NaN", "NaN"),
        ('{"a": -Infinity}', "NaN or Infinity"),
        ('{"a": 1, "a": 2}', "repeats a key"),
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_loads_refuses_what_lenient_parsers_accept(text: str, reason: str) -> None:
    from backend.values.convex_json import JSONRejected, loads

    with pytest.raises(JSONRejected, match=reason):
        loads(text)
    with pytest.raises(JSONRejected, match=reason):
        loads(text.encode("utf-8"))


def test_loads_takes_utf8_bytes_only_and_keeps_real_astral_characters() -> None:
    from backend.values.convex_json import JSONRejected, loads

    assert loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert loads('"\U0001f600"'.encode()) == "\U0001f600"
    with pytest.raises(JSONRejected, match="UTF-8"):
        loads('{"a": 1}'.encode("utf-16"))
    with pytest.raises(JSONRejected, match="UTF-8"):
        loads(b'"\xed\xa0\x80"')  # a surrogate encoded as UTF-8 bytes


def test_a_number_too_large_for_a_float_is_a_bad_argument_not_a_crash() -> None:
    from backend.values.convex_json import loads

    for text in ("9" * 400, "-" + "9" * 400, "1e400"):
        with pytest.raises(ConvexError) as info:
            from_json({"x": loads(text)})
        assert info.value.code == "INVALID_ARGUMENT"


@settings(max_examples=200)
@given(values)
def test_loads_reads_whatever_encode_writes(value: object) -> None:
    from backend.values.convex_json import loads

    text = encode(value)
    assert loads(text) == loads(text.encode("utf-8"))
    back = from_json(loads(text))
    assert back == value or (isinstance(value, float) and math.isnan(value))
