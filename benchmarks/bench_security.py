"""Security figures: the chance of guessing an email code before the account's hard stop, and
how much the answer's timing says about whether an email has an account.

    python -m benchmarks.bench_security [--tries 200]

1. Email codes. The chance is computed from the limits in ``backend/sensitive/codes.py`` and
   ``email_code.py``
   (code length, wrong tries per code, the hard stop), then confirmed by driving the real
   engine: a thief holding a session asks for codes and guesses wrong, waiting out every rate
   limit on the fake clock, until the hard stop. Baseline: the same limits without the hard
   stop, for the life of a stolen session.
2. Timing. Medians of ``--tries`` tries each for a known and an unknown email at sign-in (a
   wrong password, OWASP's argon2id), at a magic-link request and at ``members:add``, each
   email tried once (no lockout or rate limit is ever hit; the fake clock moves between tries).
   Baseline: the same measurement between two sets of known emails, which is the noise.
   The series are interleaved, so drift hits all three alike.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from backend.auth.sessions import DEFAULT_SESSION_TTL
from backend.errors import ConvexError
from backend.runtime import FakeClock
from backend.sensitive import codes
from backend.sensitive.codes import EMAIL_CODE_HARD_STOP, FAILURES_REMEMBERED, MAX_CODE_FAILURES
from backend.sensitive.email_code import CHECK_LIMITS, SEND_LIMITS, VERIFICATION_LOCKED
from backend.testing import TestBackend
from backend.udf.context import ClientInfo
from tests.conftest import basic_app

CODE_SPACE = 10**6
PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account's
TARGET = {"action": "thing.look", "resource": "x"}


# ---- 1. guessing an email code ----------------------------------------------------------------


def chance(guesses_per_code: list[int]) -> float:
    """The chance that one of these guesses hits: each code is uniform over ``CODE_SPACE`` and
    a guesser never repeats a value against one code."""
    miss = 1.0
    for k in guesses_per_code:
        miss *= 1 - k / CODE_SPACE
    return 1 - miss


def computed_bound() -> tuple[int, float]:
    """The most guesses before the hard stop, and their chance (the split across codes barely
    matters: at most ``MAX_CODE_FAILURES`` per code)."""
    full, rest = divmod(EMAIL_CODE_HARD_STOP, MAX_CODE_FAILURES)
    split = [MAX_CODE_FAILURES] * full + ([rest] if rest else [])
    return EMAIL_CODE_HARD_STOP, chance(split)


def baseline_guesses() -> tuple[float, int]:
    """Without the hard stop: wrong tries per hour and over a stolen session's life. A code dies
    after ``MAX_CODE_FAILURES`` and a new one inherits its failures for
    ``FAILURES_REMEMBERED`` (counted from the last send), so a guesser gets
    ``MAX_CODE_FAILURES`` per (that window plus the send cooldown); the checks' own bucket
    is looser."""
    cooldown = SEND_LIMITS["sensitive.code.send.cooldown"].period
    cycle = FAILURES_REMEMBERED + cooldown
    per_hour = MAX_CODE_FAILURES / (cycle / timedelta(hours=1))
    check = CHECK_LIMITS["sensitive.code.check.user"]
    per_hour = min(per_hour, check.rate / (check.period / timedelta(hours=1)))
    return per_hour, math.floor(per_hour * (DEFAULT_SESSION_TTL / timedelta(hours=1)))


def _latest_code(t: TestBackend, email: str) -> str:
    mail = [m for m in t.outbox if m.to == email][-1]
    return mail.subject.rsplit(" ", 1)[-1]


async def drive_guessing() -> tuple[list[int], timedelta]:
    """Guesses per code a thief got in before the hard stop, and the (fake) time it took."""
    clock = FakeClock()
    async with TestBackend(app=basic_app(), clock=clock) as t:
        thief = await t.sign_up("victim@example.com", PASSWORD)
        start = clock.now()
        per_code: list[int] = []
        while True:
            sent = await thief.mutation("sensitive:sendEmailCode", TARGET)
            if sent.get("code") == VERIFICATION_LOCKED:
                return per_code, clock.now() - start
            if not sent["ok"]:
                clock.advance(timedelta(milliseconds=sent["retryAfterMs"]))
                continue
            code = _latest_code(t, thief.email)
            per_code.append(0)
            guess = 0
            while True:
                value = f"{guess:06d}"
                guess += 1
                if value == code:
                    continue  # a thief who guessed right is what we are bounding, not driving
                answer = await thief.mutation(
                    "sensitive:verifyEmailCode", {**TARGET, "code": value}
                )
                if answer["code"] == "RATE_LIMITED":
                    clock.advance(timedelta(milliseconds=answer["retryAfterMs"]))
                    guess -= 1
                    continue
                if answer["code"] == VERIFICATION_LOCKED:
                    per_code[-1] += 1
                    return per_code, clock.now() - start
                per_code[-1] += 1
                if answer.get("attemptsLeft") == 0:
                    break
            clock.advance(FAILURES_REMEMBERED + timedelta(minutes=1))


# ---- 2. timing: known vs unknown email --------------------------------------------------------


def _client(i: int) -> ClientInfo:
    return ClientInfo(ip_address=f"198.51.100.{i % 250 + 1}", user_agent="bench")


async def _timed(call: Awaitable[Any]) -> float:
    start = time.perf_counter()
    try:
        await call
    except ConvexError as error:
        if error.code not in ("INVALID_EMAIL_OR_PASSWORD",):
            raise
    return (time.perf_counter() - start) * 1000


async def timing(tries: int) -> dict[str, tuple[float, float, float]]:
    """``{step: (median known, median unknown, median known again)}`` in ms."""
    clock = FakeClock()
    results: dict[str, tuple[float, float, float]] = {}
    async with TestBackend(clock=clock) as t:  # the demo app, OWASP argon2id
        owner = await t.sign_up("owner@example.com", PASSWORD)
        org = await owner.mutation("orgs:create", {"name": "Acme"})
        known: list[str] = []
        for i in range(2 * tries):
            clock.advance(timedelta(minutes=2))  # sign-up's own limits stay out of the way
            email = f"known{i}@example.com"
            await t.auth.sign_up(email, PASSWORD, None, _client(i))
            known.append(email)
        first, again = known[:tries], known[tries:]
        unknown = [f"nobody{i}@example.com" for i in range(tries)]

        async def series(
            step: Callable[[int, str], Awaitable[Any]], advance: timedelta
        ) -> tuple[float, float, float]:
            runs: tuple[list[float], list[float], list[float]] = ([], [], [])
            emails = (first, unknown, again)
            for i in range(tries):
                for n in (i % 3, (i + 1) % 3, (i + 2) % 3):  # each series takes each place
                    clock.advance(advance)
                    runs[n].append(await _timed(step(3 * i + n, emails[n][i])))
            return (
                statistics.median(runs[0]),
                statistics.median(runs[1]),
                statistics.median(runs[2]),
            )

        async def sign_in(i: int, email: str) -> None:
            await t.auth.sign_in(email, "wrong horse battery", _client(i))

        async def magic_link(i: int, email: str) -> None:
            await t.auth.request_magic_link(email, None, _client(i))

        async def add_member(_i: int, email: str) -> None:
            await owner.mutation("members:add", {"orgId": org, "email": email, "role": "member"})

        results["sign-in (wrong password)"] = await series(sign_in, timedelta(seconds=10))
        results["magic-link request"] = await series(magic_link, timedelta(seconds=10))
        # members:add allows 30 an hour per caller: 2 minutes between tries keeps it full
        results["members:add"] = await series(add_member, timedelta(minutes=2))
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=200)
    args = parser.parse_args()
    print(f"command: python -m benchmarks.bench_security --tries {args.tries}")

    guesses, p = computed_bound()
    per_code, took = await drive_guessing()
    driven = chance(per_code)
    per_hour, lifetime = baseline_guesses()
    old = chance([MAX_CODE_FAILURES] * (lifetime // MAX_CODE_FAILURES))
    print("email codes: chance of guessing one before the account's hard stop")
    print(
        f"  limits: 10^{len(str(CODE_SPACE)) - 1} codes, {MAX_CODE_FAILURES} wrong tries kill a "
        f"code, hard stop after {EMAIL_CODE_HARD_STOP} wrong codes in a row "
        f"({codes.__name__})"
    )
    print(f"  computed          : {guesses} guesses, P = {p:.2e}")
    print(
        f"  driven (harness)  : {sum(per_code)} guesses over {len(per_code)} codes in "
        f"{took / timedelta(hours=1):.1f} h of fake time, then {VERIFICATION_LOCKED}; "
        f"P = {driven:.2e}"
    )
    print(
        f"  baseline (limits alone, no hard stop): {per_hour:.2f} guesses/h for a stolen "
        f"session's {DEFAULT_SESSION_TTL.days} days = {lifetime} guesses, P = {old:.2e} "
        f"(x{old / driven:.0f} the hard stop's)"
    )

    print(f"timing: known vs unknown email, median of {args.tries} tries each (ms)")
    print(
        f"  {'step':<26} {'known':>7} {'unknown':>7} {'|diff|':>7} {'of median':>9}   "
        f"{'baseline: known again':>21} {'|diff|':>7}"
    )
    for step, (known, unknown, again) in (await timing(args.tries)).items():
        diff, noise = abs(known - unknown), abs(known - again)
        print(
            f"  {step:<26} {known:7.2f} {unknown:7.2f} {diff:7.2f} {diff / known:9.1%}   "
            f"{again:21.2f} {noise:7.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
