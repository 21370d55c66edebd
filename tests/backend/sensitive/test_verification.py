"""Email codes and password checks: single use, expiry, tries, replacement, rate limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.test_levels import latest_code

TARGET = {"action": "thing.look", "resource": "x"}


async def send(user: UserHandle) -> dict[str, Any]:
    return dict(await user.mutation("sensitive:sendEmailCode", TARGET))


async def check(user: UserHandle, code: str) -> dict[str, Any]:
    return dict(await user.mutation("sensitive:verifyEmailCode", {**TARGET, "code": code}))


def code_mails(t: TestBackend) -> list[Any]:
    """The step-up code mails (sign-up also mailed a link that confirms the address)."""
    return [m for m in t.outbox if m.subject.startswith("Your verification code")]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.fixture
async def alice(basic_t: TestBackend) -> UserHandle:
    return await basic_t.sign_up("alice@example.com", PASSWORD)


async def test_a_code_is_mailed_to_the_account_and_works_once(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    sent = await send(alice)
    assert sent["ok"] is True
    assert sent["sentTo"] == "al***@example.com"
    (mail,) = code_mails(basic_t)
    assert mail.to == "alice@example.com"
    assert "Look at x" in mail.text
    code = latest_code(basic_t, alice.email)
    assert (await check(alice, code))["ok"] is True
    assert await check(alice, code) == {"ok": False, "code": "CODE_EXPIRED"}  # used up
    codes = await basic_t.run(lambda ctx: ctx.db.query("_email_codes").collect())
    assert codes == []


async def test_codes_are_stored_only_as_keyed_hashes(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    await send(alice)
    code = latest_code(basic_t, alice.email)
    (row,) = await basic_t.run(lambda ctx: ctx.db.query("_email_codes").collect())
    assert code not in repr(row)
    assert len(row["codeHash"]) == 64


async def test_a_code_expires(basic_t: TestBackend, alice: UserHandle) -> None:
    await send(alice)
    code = latest_code(basic_t, alice.email)
    basic_t.clock.advance(minutes=10, seconds=1)
    assert await check(alice, code) == {"ok": False, "code": "CODE_EXPIRED"}


async def test_the_fifth_wrong_try_kills_the_code(basic_t: TestBackend, alice: UserHandle) -> None:
    await send(alice)
    code = latest_code(basic_t, alice.email)
    left = [(await check(alice, wrong(code)))["attemptsLeft"] for _ in range(5)]
    assert left == [4, 3, 2, 1, 0]
    assert await check(alice, code) == {"ok": False, "code": "INVALID_CODE", "attemptsLeft": 0}


async def test_a_new_code_replaces_the_old_without_resetting_failures(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    await send(alice)
    first = latest_code(basic_t, alice.email)
    assert (await check(alice, wrong(first)))["attemptsLeft"] == 4
    second = first
    while second == first:  # (a new code may repeat the old digits, one time in a million)
        basic_t.clock.advance(seconds=61)  # past the resend cooldown
        await send(alice)
        second = latest_code(basic_t, alice.email)
    replaced = await check(alice, first)
    assert replaced == {"ok": False, "code": "INVALID_CODE", "attemptsLeft": 3}
    assert (await check(alice, second))["ok"] is True


@pytest.mark.rate_limits
async def test_sends_have_a_cooldown_and_an_hourly_cap(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    assert (await send(alice))["ok"] is True
    again = await send(alice)
    assert again["ok"] is False
    assert again["code"] == "RATE_LIMITED"
    assert 0 < again["retryAfterMs"] <= 60_000
    basic_t.clock.advance(milliseconds=again["retryAfterMs"])
    assert (await send(alice))["ok"] is True
    for _ in range(3):
        basic_t.clock.advance(seconds=61)
        assert (await send(alice))["ok"] is True
    basic_t.clock.advance(seconds=61)
    capped = await send(alice)
    assert capped["code"] == "RATE_LIMITED"
    assert capped["retryAfterMs"] > 60_000
    assert len(code_mails(basic_t)) == 5


@pytest.mark.rate_limits
async def test_checks_are_rate_limited(basic_t: TestBackend, alice: UserHandle) -> None:
    await send(alice)
    answers = [await check(alice, "000000") for _ in range(11)]
    assert answers[-1]["code"] == "RATE_LIMITED"
    assert answers[-1]["retryAfterMs"] > 0


async def test_wrong_passwords_are_counted_then_locked_out_for_longer_and_longer(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    async def attempt(password: str) -> dict[str, Any]:
        return dict(
            await alice.mutation("sensitive:verifyPassword", {**TARGET, "password": password})
        )

    for _ in range(2):  # five checks per 15 minutes; the tenth failure in a row locks
        assert [(await attempt("wrong horse battery"))["code"] for _ in range(5)] == [
            "INVALID_PASSWORD"
        ] * 5
        if _ == 0:
            basic_t.clock.advance(minutes=15)
    locked = await attempt(PASSWORD)  # even the right one, while locked out
    assert locked["code"] == "RATE_LIMITED"
    assert 0 < locked["retryAfterMs"] <= 60_000
    basic_t.clock.advance(minutes=15)
    assert (await attempt("wrong horse battery"))["code"] == "INVALID_PASSWORD"
    longer = await attempt(PASSWORD)  # the eleventh failure locks for twice as long
    assert longer["code"] == "RATE_LIMITED"
    assert 60_000 < longer["retryAfterMs"] <= 120_000
    basic_t.clock.advance(milliseconds=longer["retryAfterMs"])
    assert (await attempt(PASSWORD))["ok"] is True


@pytest.mark.rate_limits
async def test_parallel_password_guesses_get_a_handful_of_answers(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    answers = await asyncio.gather(
        *(
            alice.mutation("sensitive:verifyPassword", {**TARGET, "password": f"guess number {i}"})
            for i in range(20)
        )
    )
    codes = [a["code"] for a in answers]
    assert codes.count("INVALID_PASSWORD") == 5
    assert codes.count("RATE_LIMITED") == 15


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("sensitive:verifyPassword", {"action": "thing.look", "password": 5}),
        ("sensitive:verifyEmailCode", {"action": "thing.look"}),
        ("sensitive:sendEmailCode", {"action": ""}),
        ("sensitive:sendEmailCode", {"action": "a" * 500}),
        ("sensitive:verifyEmailCode", {"action": "thing.look", "code": "1", "extra": True}),
    ],
)
async def test_bad_arguments_throw(alice: UserHandle, path: str, args: dict[str, Any]) -> None:
    with pytest.raises(ConvexError) as info:
        await alice.mutation(path, args)
    assert info.value.code == "INVALID_ARGUMENT"


async def test_no_session_throws(basic_t: TestBackend) -> None:
    with pytest.raises(ConvexError) as info:
        await basic_t.mutation("sensitive:sendEmailCode", TARGET)
    assert info.value.code == "UNAUTHENTICATED"
