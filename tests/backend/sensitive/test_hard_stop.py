"""Guessing email codes with a stolen session: every wrong code counts against the account,
and after ``EMAIL_CODE_HARD_STOP`` of them no session signed in before stops guessing, however
long it waits. Signing in again (a stronger proof) starts afresh."""

from __future__ import annotations

from typing import Any

from backend.sensitive.codes import EMAIL_CODE_HARD_STOP
from backend.sensitive.email_code import VERIFICATION_LOCKED
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.test_levels import latest_code

TARGET = {"action": "thing.look", "resource": "x"}


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def guess_until_stopped(t: TestBackend, thief: UserHandle, *, rounds: int = 200) -> int:
    """Send codes and guess wrong, waiting out every limit, until the hard stop; returns how
    many guesses were checked against a live code."""
    guesses = 0
    for _ in range(rounds):
        sent: dict[str, Any] = await thief.mutation("sensitive:sendEmailCode", TARGET)
        if sent.get("code") == VERIFICATION_LOCKED:
            return guesses
        if not sent["ok"]:
            t.clock.advance(milliseconds=sent["retryAfterMs"])
            continue
        code = latest_code(t, thief.email)
        while True:
            answer = await thief.mutation(
                "sensitive:verifyEmailCode", {**TARGET, "code": wrong(code)}
            )
            if answer["code"] == "RATE_LIMITED":
                t.clock.advance(milliseconds=answer["retryAfterMs"])
                continue
            if answer["code"] == VERIFICATION_LOCKED:
                return guesses + 1
            assert answer["code"] == "INVALID_CODE", answer
            guesses += 1
            if answer["attemptsLeft"] == 0:
                break
        t.clock.advance(minutes=61)  # until a new code no longer inherits the failures
    raise AssertionError("no hard stop")


async def test_a_stolen_session_guessing_codes_hits_the_accounts_hard_stop(
    basic_t: TestBackend,
) -> None:
    thief = await basic_t.sign_up("alice@example.com", PASSWORD)  # the session the thief holds
    assert await guess_until_stopped(basic_t, thief) == EMAIL_CODE_HARD_STOP
    basic_t.clock.advance(days=5)  # (within the session's seven days of life)
    assert (await thief.mutation("sensitive:sendEmailCode", TARGET))["code"] == VERIFICATION_LOCKED
    answer = await thief.mutation("sensitive:verifyEmailCode", {**TARGET, "code": "000000"})
    assert answer["code"] == VERIFICATION_LOCKED

    # The owner signs in again: that session uses codes as before; the stolen one stays stopped.
    owner = await basic_t.sign_in("alice@example.com", PASSWORD)
    assert (await owner.mutation("sensitive:sendEmailCode", TARGET))["ok"] is True
    code = latest_code(basic_t, owner.email)
    assert (await owner.mutation("sensitive:verifyEmailCode", {**TARGET, "code": code}))["ok"]
    assert (await thief.mutation("sensitive:sendEmailCode", TARGET))["code"] == VERIFICATION_LOCKED


async def test_a_right_code_clears_the_count(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("alice@example.com", PASSWORD)
    for _ in range(3):
        await alice.mutation("sensitive:sendEmailCode", TARGET)
        code = latest_code(basic_t, alice.email)
        for _ in range(EMAIL_CODE_HARD_STOP // 4):
            await alice.mutation("sensitive:verifyEmailCode", {**TARGET, "code": wrong(code)})
        assert (await alice.mutation("sensitive:verifyEmailCode", {**TARGET, "code": code}))[
            "code"
        ] == "INVALID_CODE"  # five wrong tries killed that code...
        basic_t.clock.advance(minutes=61)
        await alice.mutation("sensitive:sendEmailCode", TARGET)
        code = latest_code(basic_t, alice.email)
        answer = await alice.mutation("sensitive:verifyEmailCode", {**TARGET, "code": code})
        assert answer["ok"] is True  # ...a right one passes, and the account count restarts
        basic_t.clock.advance(minutes=61)
