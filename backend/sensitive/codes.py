"""The rules of email codes, as plain functions over records (``records.py``). Pure.

A code is six digits, mailed to the account's own address, good for ``CODE_TTL`` and once.
Only its keyed hash is stored (``code_hash``): bound to the user, session, action and
resource it was sent for, so a code for one is worthless for another, and a leaked table
reveals none.

Wrong tries are counted twice:

- on the code: after ``MAX_CODE_FAILURES`` it is dead. A new code replaces the old one but
  inherits its failures for ``FAILURES_REMEMBERED`` after the old one was sent, so resending
  is no way to more guesses;
- on the account (``CodeFailures``): ``EMAIL_CODE_HARD_STOP`` wrong codes in a row, across
  codes, actions and sessions, and every session signed in before the last of them loses the
  email method for good; a right code resets the count, signing in again (a stronger proof
  than a code) starts afresh. A guesser holding a stolen session thus makes at most that many
  guesses at one-in-a-million codes (``BENCHMARKS.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import replace
from datetime import timedelta
from enum import Enum

from backend.runtime import RandomSource
from backend.sensitive.records import CodeFailures, EmailCode, Session

CODE_TTL = timedelta(minutes=10)
MAX_CODE_FAILURES = 5
FAILURES_REMEMBERED = timedelta(hours=1)
EMAIL_CODE_HARD_STOP = 20
DIGITS = 6
_CODE = re.compile(r"\d{6}")


def draw(random: RandomSource, *, not_in: str) -> str:
    """A fresh code that ``not_in`` (the mail's description) does not already spell out, so
    that the mail names its code exactly once."""
    while True:
        code = f"{random.randbelow(10**DIGITS):0{DIGITS}d}"
        if code not in not_in:
            return code


def code_hash(
    secret: bytes,
    code: str,
    *,
    user_id: str,
    session_id: str,
    action: str,
    resource: str | None,
) -> str:
    """HMAC of the code and everything it is for."""
    message = "\x1f".join(("email-code", code, user_id, session_id, action, resource or ""))
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def carried_failures(previous: EmailCode | None, now_ms: float) -> int:
    """The failures a new code inherits from the one it replaces."""
    if previous is None:
        return 0
    if now_ms - previous.created_at < FAILURES_REMEMBERED.total_seconds() * 1000:
        return previous.failures
    return 0


class CodeVerdict(Enum):
    """What a presented code is; each value is the detail the audit trail records."""

    EXPIRED = "expired"  # no code, or past its time: ask for a new one
    DEAD = "dead"  # too many wrong tries on this code
    WRONG = "wrong code"
    RIGHT = "right"


def judge(
    entry: EmailCode | None, presented: str, expected_hash: str, now_ms: float
) -> CodeVerdict:
    """``presented`` against the stored ``entry``; ``expected_hash`` is ``code_hash`` of the
    presented code (stripped) for this caller, compared in constant time."""
    if entry is None or entry.expires_at <= now_ms:
        return CodeVerdict.EXPIRED
    if entry.failures >= MAX_CODE_FAILURES:
        return CodeVerdict.DEAD
    well_formed = _CODE.fullmatch(presented.strip()) is not None
    if well_formed and hmac.compare_digest(expected_hash, entry.code_hash):
        return CodeVerdict.RIGHT
    return CodeVerdict.WRONG


def attempts_left(failures: int) -> int:
    """Tries a code has left after ``failures`` wrong ones."""
    return max(0, MAX_CODE_FAILURES - failures)


def is_stopped(failures: CodeFailures, session: Session) -> bool:
    """Whether the account's hard stop holds ``session`` (signed in before it engaged)."""
    return failures.stopped_at is not None and session.signed_in_at <= failures.stopped_at


def after_wrong_code(failures: CodeFailures, now_ms: float) -> CodeFailures:
    """The account's record after one more wrong code: at the hard stop, the stop engages
    now and the count starts again."""
    count = failures.count + 1
    if count >= EMAIL_CODE_HARD_STOP:
        return replace(failures, count=0, stopped_at=now_ms, last_failure_at=now_ms)
    return replace(failures, count=count, last_failure_at=now_ms)


__all__ = [
    "CODE_TTL",
    "EMAIL_CODE_HARD_STOP",
    "FAILURES_REMEMBERED",
    "MAX_CODE_FAILURES",
    "CodeVerdict",
    "after_wrong_code",
    "attempts_left",
    "carried_failures",
    "code_hash",
    "draw",
    "is_stopped",
    "judge",
]
