"""The rules of email codes, over records alone: drawing, hashing, judging, the carry-over
of failures and the account's hard stop. No database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.sensitive import codes
from backend.sensitive.codes import (
    EMAIL_CODE_HARD_STOP,
    FAILURES_REMEMBERED,
    MAX_CODE_FAILURES,
    CodeVerdict,
)
from backend.sensitive.records import CodeFailures, EmailCode, Session

SECRET = b"server secret"
NOW = 5_000_000.0
BOUND = {"user_id": "u1", "session_id": "s1", "action": "org.delete", "resource": "org-a"}


class Draws:
    """A random source that draws the given numbers, in order."""

    def __init__(self, *numbers: int) -> None:
        self._numbers: Iterator[int] = iter(numbers)

    def randbelow(self, n: int) -> int:
        value = next(self._numbers)
        assert 0 <= value < n
        return value

    def token_bytes(self, n: int) -> bytes:
        raise AssertionError("codes draw digits only")


def _entry(code: str = "123456", **fields: float) -> EmailCode:
    values = {"expires_at": NOW + 60_000, "failures": 0, "created_at": NOW - 60_000, **fields}
    return EmailCode(
        code_hash=codes.code_hash(SECRET, code, **BOUND),
        expires_at=values["expires_at"],
        failures=int(values["failures"]),
        created_at=values["created_at"],
    )


def _expected(presented: str) -> str:
    return codes.code_hash(SECRET, presented.strip(), **BOUND)


def test_a_code_is_six_digits_and_never_one_the_description_spells_out() -> None:
    assert codes.draw(Draws(42), not_in="Delete Acme") == "000042"
    assert codes.draw(Draws(2026, 7), not_in="Rename org 002026") == "000007"


def test_a_code_hash_binds_the_code_to_its_user_session_action_and_resource() -> None:
    base = codes.code_hash(SECRET, "123456", **BOUND)
    for key, other in [
        ("user_id", "u2"),
        ("session_id", "s2"),
        ("action", "x"),
        ("resource", None),
    ]:
        assert codes.code_hash(SECRET, "123456", **{**BOUND, key: other}) != base  # type: ignore[arg-type]
    assert codes.code_hash(b"another secret", "123456", **BOUND) != base
    assert "123456" not in base


@pytest.mark.parametrize(
    ("presented", "verdict"),
    [
        ("123456", CodeVerdict.RIGHT),
        (" 123456\n", CodeVerdict.RIGHT),
        ("123457", CodeVerdict.WRONG),
        ("12345", CodeVerdict.WRONG),
        ("", CodeVerdict.WRONG),
    ],
)
def test_judging_a_presented_code(presented: str, verdict: CodeVerdict) -> None:
    assert codes.judge(_entry(), presented, _expected(presented), NOW) is verdict


def test_a_missing_or_expired_code_is_expired_and_a_worn_out_one_dead_even_if_right() -> None:
    assert codes.judge(None, "123456", _expected("123456"), NOW) is CodeVerdict.EXPIRED
    late = _entry(expires_at=NOW)
    assert codes.judge(late, "123456", _expected("123456"), NOW) is CodeVerdict.EXPIRED
    worn = _entry(failures=MAX_CODE_FAILURES)
    assert codes.judge(worn, "123456", _expected("123456"), NOW) is CodeVerdict.DEAD


def test_a_new_code_inherits_the_failures_of_a_recent_one_and_only_a_recent_one() -> None:
    window = FAILURES_REMEMBERED.total_seconds() * 1000
    recent = _entry(failures=3, created_at=NOW - window + 1)
    old = _entry(failures=3, created_at=NOW - window)
    assert codes.carried_failures(recent, NOW) == 3
    assert codes.carried_failures(old, NOW) == 0
    assert codes.carried_failures(None, NOW) == 0
    assert [codes.attempts_left(n) for n in (1, MAX_CODE_FAILURES, 9)] == [4, 0, 0]


def test_the_hard_stop_engages_at_its_count_and_holds_sessions_signed_in_before_it() -> None:
    record = CodeFailures()
    for n in range(1, EMAIL_CODE_HARD_STOP):
        record = codes.after_wrong_code(record, NOW + n)
        assert (record.count, record.stopped_at) == (n, None)
    stopped = codes.after_wrong_code(record, NOW + 100)
    assert (stopped.count, stopped.stopped_at, stopped.last_failure_at) == (0, NOW + 100, NOW + 100)
    before = Session("s1", "u1", signed_in_at=NOW)
    after = Session("s2", "u1", signed_in_at=NOW + 101)
    assert codes.is_stopped(stopped, before)
    assert not codes.is_stopped(stopped, after)  # signing in again starts afresh
    assert not codes.is_stopped(record, before)
    # one more wrong code by the new session counts from zero; the stop stays where it was
    again = codes.after_wrong_code(stopped, NOW + 200)
    assert (again.count, again.stopped_at) == (1, NOW + 100)
