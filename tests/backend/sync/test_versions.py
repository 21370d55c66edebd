"""The version chain that keeps every Transition's startVersion equal to the last endVersion."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.sync.protocol import INITIAL, StateVersion
from backend.sync.versions import VersionChain


def test_first_transition_starts_at_zero() -> None:
    chain = VersionChain()
    assert chain.last == INITIAL
    start, end = chain.next(query_set=1, ts=10)
    assert start == INITIAL
    assert end == StateVersion(1, 0, 10)
    assert chain.last == end


def test_each_start_is_the_previous_end() -> None:
    chain = VersionChain()
    _, first_end = chain.next(query_set=1, ts=5)
    second_start, second_end = chain.next(ts=7)
    assert second_start == first_end
    assert chain.next()[0] == second_end


def test_fields_not_given_stay_the_same() -> None:
    chain = VersionChain()
    chain.next(query_set=3, identity=1, ts=9)
    start, end = chain.next()
    assert start == end == StateVersion(3, 1, 9)


def test_ts_never_goes_backwards() -> None:
    chain = VersionChain()
    chain.next(ts=100)
    _, end = chain.next(ts=40)
    assert end.ts == 100
    _, end = chain.next(ts=101)
    assert end.ts == 101


def test_identity_rises_by_exactly_one() -> None:
    chain = VersionChain()
    assert chain.next(identity=1)[1].identity == 1
    assert chain.next(identity=2)[1].identity == 2


@pytest.mark.parametrize("identity", [0, 1, 3, 10])
def test_identity_jump_or_repeat_is_refused_and_changes_nothing(identity: int) -> None:
    chain = VersionChain()
    chain.next(identity=1, ts=5)
    before = chain.last
    with pytest.raises(ValueError, match="identity"):
        chain.next(identity=identity, ts=6)
    assert chain.last == before


@pytest.mark.parametrize("ts", [-1, 1.5, True, "5"])
def test_bad_ts_is_refused_even_when_smaller_than_the_last(ts: Any) -> None:
    chain = VersionChain()
    chain.next(ts=10)
    with pytest.raises(ValueError, match="ts"):
        chain.next(ts=ts)
    assert chain.last == StateVersion(0, 0, 10)


def test_ts_beyond_u64_and_negative_query_set_are_refused() -> None:
    chain = VersionChain()
    with pytest.raises(ValueError, match="StateVersion"):
        chain.next(ts=2**64)
    with pytest.raises(ValueError, match="StateVersion"):
        chain.next(query_set=-1)
    assert chain.last == INITIAL


def test_reset_starts_a_new_socket_from_zero() -> None:
    chain = VersionChain()
    chain.next(query_set=4, identity=1, ts=50)
    chain.reset()
    assert chain.last == INITIAL
    start, _ = chain.next(query_set=1, ts=50)
    assert start == INITIAL
    # Identity restarts too: the client resends its token with baseVersion 0.
    assert chain.next(identity=1)[1] == StateVersion(1, 1, 50)


steps = st.lists(
    st.tuples(
        st.none() | st.integers(min_value=0, max_value=2**53),
        st.booleans(),  # raise identity?
        st.none() | st.integers(min_value=0, max_value=2**64 - 1),
        st.integers(min_value=0, max_value=9),  # 0 means reset
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(steps)
def test_any_sequence_of_steps_keeps_the_chain_unbroken(
    sequence: list[tuple[int | None, bool, int | None, int]],
) -> None:
    chain = VersionChain()
    last_sent = INITIAL
    for query_set, raise_identity, ts, reset_roll in sequence:
        if reset_roll == 0:
            chain.reset()
            last_sent = INITIAL
            continue
        identity = last_sent.identity + 1 if raise_identity else None
        start, end = chain.next(query_set=query_set, identity=identity, ts=ts)
        assert start == last_sent
        assert end.ts >= start.ts
        assert end.ts == (start.ts if ts is None else max(start.ts, ts))
        assert end.identity - start.identity == (1 if raise_identity else 0)
        assert end.query_set == (start.query_set if query_set is None else query_set)
        last_sent = end
    assert chain.last == last_sent
