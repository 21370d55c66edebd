from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.values.convex_json import Int64
from backend.values.index_key import MISSING, KeyRange, encode_key, encode_value, prefix_end


def _rank(value: Any) -> tuple[Any, ...]:
    """Python's reading of Convex's order, for comparison."""
    if value is MISSING:
        return (0,)
    if value is None:
        return (1,)
    if isinstance(value, Int64):
        return (2, int(value))
    if isinstance(value, bool):
        return (4, value)
    if isinstance(value, int | float):
        return (3, float(value))
    if isinstance(value, str):
        return (5, value.encode())
    if isinstance(value, bytes):
        return (6, value)
    raise AssertionError(value)


scalars = (
    st.just(MISSING)
    | st.none()
    | st.booleans()
    | st.builds(Int64, st.integers(-(2**63), 2**63 - 1))
    | st.floats(allow_nan=False)
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=6)
    | st.binary(max_size=6)
)


@settings(max_examples=500)
@given(st.lists(scalars, min_size=1, max_size=3), st.lists(scalars, min_size=1, max_size=3))
def test_encoded_keys_sort_like_the_values(a: list[Any], b: list[Any]) -> None:
    ra, rb = [_rank(v) for v in a], [_rank(v) for v in b]
    ka, kb = encode_key(a), encode_key(b)
    assert (ka < kb) == (ra < rb)
    assert (ka == kb) == (ra == rb)


@given(st.text(max_size=6), st.text(max_size=6))
def test_prefix_range_holds_exactly_the_keys_with_that_prefix(a: str, b: str) -> None:
    prefix = encode_value(a)
    key = encode_key([b, 1.0])
    assert KeyRange.prefix(prefix).contains(key) == (a == b)


def test_prefix_end_of_all_ff_is_unbounded() -> None:
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"a\xff") == b"b"


def test_negative_zero_and_zero_are_one_key() -> None:
    assert encode_value(-0.0) == encode_value(0.0) == encode_value(0)
