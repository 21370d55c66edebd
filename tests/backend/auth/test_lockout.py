"""The failure record's pure core: how locks grow, who they hold, and the hard stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from backend.auth.lockout import (
    FREE_FAILURES,
    HARD_STOP,
    MAX_DELAY,
    Failures,
    RefusalCode,
    lock_for,
    refusal_for,
)
from backend.errors import ConvexError
from backend.testing import TestBackend
from tests.backend.sensitive.conftest import PASSWORD, cheap_passwords
from tests.conftest import basic_app

MINUTE = 60_000.0
DAY = 24 * 60 * MINUTE


def failed(times: int, *, start: Failures | None = None, at: float = 0.0) -> Failures:
    record = start or Failures()
    for _ in range(times):
        record = record.failed(at)
    return record


def test_the_first_nine_failures_are_free_then_the_lock_doubles_up_to_an_hour() -> None:
    assert [lock_for(n) for n in range(1, FREE_FAILURES)] == [None] * (FREE_FAILURES - 1)
    minutes = [lock_for(n) for n in range(FREE_FAILURES, FREE_FAILURES + 8)]
    assert minutes == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60)]
    assert lock_for(10_000) == MAX_DELAY


def test_an_attacker_who_keeps_going_gets_about_two_dozen_guesses_a_day() -> None:
    record, now, guesses = Failures(), 0.0, [0, 0]
    while now < 2 * DAY:  # always guessing the moment the lock ends
        wait = record.wait_ms(now)
        if wait is not None:
            now += wait
            continue
        record = record.failed(now)
        guesses[int(now // DAY)] += 1
    # Day one: ten free, then the lock grows to an hour; from then on, one an hour.
    assert 30 <= guesses[0] <= 45
    assert 23 <= guesses[1] <= 25


def test_an_unknown_client_is_held_by_the_accounts_lock_a_known_device_by_its_own() -> None:
    account = failed(FREE_FAILURES)
    unknown = refusal_for(account, None, 0.0)
    assert unknown is not None
    assert unknown.code is RefusalCode.RATE_LIMITED
    assert unknown.retry_after_ms == MINUTE
    assert refusal_for(account, Failures(), 0.0) is None  # strangers' failures: not the device's
    device = failed(FREE_FAILURES)
    refused = refusal_for(Failures(), device, 0.0)
    assert refused is not None
    assert refused.code is RefusalCode.RATE_LIMITED


def test_the_hard_stop_holds_unknown_clients_at_100_failures_and_everyone_at_100_in_a_row() -> None:
    account = Failures(failures=HARD_STOP, consecutive=3, last_failure_at=0.0)
    stopped = refusal_for(account, None, 10 * DAY)  # never lifted by waiting
    assert stopped is not None
    assert stopped.code is RefusalCode.PASSWORD_LOCKED
    assert refusal_for(account.current(10 * DAY), Failures(), 10 * DAY) is None
    in_a_row = Failures(failures=HARD_STOP, consecutive=HARD_STOP, last_failure_at=0.0)
    refused = refusal_for(in_a_row.current(10 * DAY), Failures(), 10 * DAY)
    assert refused is not None
    assert refused.code is RefusalCode.PASSWORD_LOCKED


def test_a_quiet_record_is_forgotten_after_a_day_unless_it_reached_the_hard_stop() -> None:
    record = failed(FREE_FAILURES + 3)
    assert record.current(DAY - 1) == record
    assert record.current(DAY) == Failures()
    stopped = failed(HARD_STOP)
    assert stopped.current(30 * DAY) == stopped


def test_a_failure_never_shortens_a_lock_already_running() -> None:
    long = Failures(failures=FREE_FAILURES + 5, locked_until=60 * MINUTE)
    assert long.failed(0.0).locked_until == 60 * MINUTE


# ---- through the engine, on each database ---------------------------------------------------


@pytest.fixture
async def t(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, app=basic_app(), passwords=cheap_passwords()) as backend:
        yield backend


async def fail_until_stopped(t: TestBackend, email: str, most: int = 10_000) -> int:
    """Wrong passwords from unknown clients, each as soon as the lock allows, until the hard
    stop (or ``most`` of them): the count made."""
    made = 0
    while made < most:
        try:
            await t.sign_in(email, "not the password at all")
        except ConvexError as error:
            if error.code == "INVALID_EMAIL_OR_PASSWORD":
                made += 1
            elif error.code == "RATE_LIMITED":
                t.clock.advance(milliseconds=error.data["retryAfterMs"])
            else:
                stopped_by = error.code
                break
    else:
        return made
    assert stopped_by == "PASSWORD_LOCKED"
    return made


async def test_a_hundred_failures_stop_password_checks_until_the_address_is_proven(
    t: TestBackend,
) -> None:
    await t.sign_up("owner@example.com", PASSWORD)
    owner = await t.verify_email("owner@example.com")
    assert await fail_until_stopped(t, "owner@example.com") == HARD_STOP
    t.clock.advance(days=2)  # waiting lifts nothing
    with pytest.raises(ConvexError) as stopped:
        await t.sign_in("owner@example.com", PASSWORD)
    assert stopped.value.code == "PASSWORD_LOCKED"
    assert "sign in with a link" in stopped.value.data["message"]
    # The step-up check stops too (a hundred in a row, with no success between), and the
    # password is no longer offered: the email code is.
    status = await owner.query("sensitive:status", {"action": "thing.look", "resource": "x"})
    assert status["methods"] == ["email"]
    answer = await owner.mutation(
        "sensitive:verifyPassword", {"action": "thing.look", "resource": "x", "password": PASSWORD}
    )
    assert answer == {"ok": False, "code": "METHOD_NOT_AVAILABLE"}

    await t.sign_in_magic_link("owner@example.com")  # the owner proves the address
    again = await t.sign_in("owner@example.com", PASSWORD)
    assert again.email == "owner@example.com"


async def test_the_hard_stop_reveals_no_more_about_unknown_addresses(t: TestBackend) -> None:
    assert await fail_until_stopped(t, "nobody@example.com") == HARD_STOP


async def test_a_known_devices_success_resets_the_run_so_strangers_alone_are_stopped(
    t: TestBackend,
) -> None:
    owner = await t.sign_up("owner@example.com", PASSWORD)
    target = {"action": "thing.look", "resource": "x", "password": PASSWORD}
    assert await fail_until_stopped(t, "owner@example.com", most=60) == 60
    # The owner's session was signed in on a known device: not held by strangers' lock, and
    # its success breaks the run of consecutive failures (NIST's count).
    assert (await owner.mutation("sensitive:verifyPassword", target))["ok"] is True
    assert await fail_until_stopped(t, "owner@example.com") == HARD_STOP - 60
    with pytest.raises(ConvexError) as stopped:  # strangers stop at 100 on the account
        await t.sign_in("owner@example.com", PASSWORD)
    assert stopped.value.code == "PASSWORD_LOCKED"
    t.clock.advance(minutes=15)  # (the step-up check's own budget)
    assert (await owner.mutation("sensitive:verifyPassword", target))["ok"] is True


async def test_failure_records_hold_no_address_and_no_password(t: TestBackend) -> None:
    await t.sign_up("owner@example.com", PASSWORD)
    with pytest.raises(ConvexError):
        await t.sign_in("owner@example.com", "not the password at all")
    rows = await t.run(lambda ctx: ctx.db.query("_password_failures").collect())
    assert len(rows) == 1
    assert "owner" not in repr(rows)
    assert "password at all" not in repr(rows)
    devices = await t.run(lambda ctx: ctx.db.query("_devices").collect())
    assert len(devices) == 1  # the sign-up's browser
