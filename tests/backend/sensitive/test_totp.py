"""Authenticator apps (TOTP): enrolment gated by step-up, the window, replay, the shared
lockout, removal not proven by the app itself, and the secret never stored readable."""

from __future__ import annotations

import json
from typing import Any

import pyotp
import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.factor_helpers import (
    enrol_totp,
    totp_now,
    verify_totp,
    verify_with_password,
)

LOOK = "thing.look"  # level 3 in the basic app


@pytest.fixture
async def alice(basic_t: TestBackend) -> UserHandle:
    return await basic_t.sign_up("alice@example.com", PASSWORD)


async def look(user: UserHandle) -> Any:
    return await user.mutation("protected:look", {"name": "x"})


async def test_setting_up_an_app_needs_a_step_up(alice: UserHandle) -> None:
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:enrolTotp", {})
    data = info.value.data
    assert data["code"] == "SENSITIVE_VERIFICATION_REQUIRED"
    assert data["action"] == "factor.totp.add"
    assert data["level"] == 3
    assert data["methods"] == ["password", "email"]


async def test_enrolment_gives_a_uri_and_qr_and_is_confirmed_by_a_first_code(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    await verify_with_password(alice, "factor.totp.add")
    started = await alice.mutation("sensitive:enrolTotp", {})
    secret = started["secret"]
    parsed = pyotp.parse_uri(started["uri"])
    assert started["uri"].startswith("otpauth://totp/")
    assert parsed.secret == secret
    assert parsed.name == "alice@example.com"
    assert parsed.issuer == "testserver"
    assert started["qrSvg"].startswith("<svg")
    # not on until confirmed: step-up does not offer it yet
    status = await alice.query("sensitive:status", {"action": LOOK, "resource": "x"})
    assert "totp" not in status["methods"]
    wrong = f"{(int(totp_now(basic_t, secret)) + 1) % 10**6:06d}"
    assert (await alice.mutation("sensitive:confirmTotp", {"code": wrong}))["code"] == (
        "INVALID_CODE"
    )
    confirmed = await alice.mutation("sensitive:confirmTotp", {"code": totp_now(basic_t, secret)})
    assert confirmed["ok"] is True
    assert len(confirmed["backupCodes"]) == 10
    assert len(set(confirmed["backupCodes"])) == 10
    mail = [m for m in basic_t.outbox if m.subject == "An authenticator app was added"]
    assert len(mail) == 1
    assert "TestBackend at 127.0.0.1" in mail[0].text
    assert "UTC" in mail[0].text
    status = await alice.query("sensitive:status", {"action": LOOK, "resource": "x"})
    assert status["methods"] == ["totp", "password", "backup_code", "email"]


async def test_the_secret_is_stored_only_sealed(basic_t: TestBackend, alice: UserHandle) -> None:
    secret, codes = await enrol_totp(basic_t, alice)

    async def everything(ctx: Any) -> str:
        rows = []
        for table in ("_totp_factors", "_backup_codes", "_audit_events", "_outbox"):
            rows += await ctx.db.query(table).collect()
        return json.dumps(rows, default=str)

    stored = await basic_t.run(everything)
    assert secret not in stored
    assert secret.lower() not in stored
    for code in codes:
        assert code not in stored
        assert code.replace("-", "") not in stored
    (factor,) = await basic_t.run(lambda ctx: ctx.db.query("_totp_factors").collect())
    assert factor["sealedSecret"].startswith("v1.")


async def test_a_code_steps_up_once_and_a_replay_fails(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    secret, _ = await enrol_totp(basic_t, alice)
    code = totp_now(basic_t, secret)
    assert (await verify_totp(basic_t, alice, LOOK, code, "x"))["ok"] is True
    assert await look(alice) is not None
    # the same code again, even for another target, even a second later
    basic_t.clock.advance(seconds=1)
    assert await verify_totp(basic_t, alice, LOOK, code, "y") == {
        "ok": False,
        "code": "INVALID_CODE",
    }
    # and a code of the step before, still in the window, is older than the one accepted
    earlier = totp_now(basic_t, secret, steps=-1)
    assert (await verify_totp(basic_t, alice, LOOK, earlier, "y"))["code"] == "INVALID_CODE"
    events = await basic_t.run(lambda ctx: ctx.db.query("_audit_events").collect())
    details = [e.get("detail") for e in events if e.get("method") == "totp"]
    assert details.count("replayed code") == 2


async def test_the_window_is_one_step_either_side(basic_t: TestBackend, alice: UserHandle) -> None:
    secret, _ = await enrol_totp(basic_t, alice)
    basic_t.clock.advance(minutes=2)  # well past the step that confirmed it
    too_old = totp_now(basic_t, secret, steps=-2)
    assert (await verify_totp(basic_t, alice, LOOK, too_old, "x"))["code"] == "INVALID_CODE"
    assert (await verify_totp(basic_t, alice, LOOK, totp_now(basic_t, secret, steps=-1), "x"))[
        "ok"
    ] is True
    basic_t.clock.advance(seconds=30)  # now the next step
    ahead = totp_now(basic_t, secret, steps=1)
    assert (await verify_totp(basic_t, alice, LOOK, ahead, "x"))["ok"] is True
    basic_t.clock.advance(seconds=30)
    # the step ahead was accepted: the current one (equal to it) is spent
    assert (await verify_totp(basic_t, alice, LOOK, totp_now(basic_t, secret), "x"))[
        "code"
    ] == "INVALID_CODE"
    too_far = totp_now(basic_t, secret, steps=2)
    assert (await verify_totp(basic_t, alice, LOOK, too_far, "x"))["code"] == "INVALID_CODE"


async def test_wrong_codes_count_on_the_passwords_lockout(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    secret, _ = await enrol_totp(basic_t, alice)
    for batch in range(2):  # five checks per 15 minutes; the tenth failure in a row locks
        answers = [
            (await verify_totp(basic_t, alice, LOOK, f"{guess:06d}", "x"))["code"]
            for guess in range(5)
        ]
        assert answers == ["INVALID_CODE"] * 5
        if batch == 0:
            basic_t.clock.advance(minutes=15)
    # the lock is the password's own: the right password and a right code wait alike
    refused = await alice.mutation(
        "sensitive:verifyPassword", {"action": LOOK, "resource": "x", "password": PASSWORD}
    )
    assert refused["code"] == "RATE_LIMITED"
    assert 0 < refused["retryAfterMs"] <= 60_000
    locked = await verify_totp(basic_t, alice, LOOK, totp_now(basic_t, secret), "x")
    assert locked["code"] == "RATE_LIMITED"
    basic_t.clock.advance(minutes=3)  # the lock is over, and the budget has one check again
    assert (await verify_totp(basic_t, alice, LOOK, totp_now(basic_t, secret), "x"))["ok"] is True


async def test_removing_the_app_is_not_proven_by_the_app(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    secret, _ = await enrol_totp(basic_t, alice)
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:removeTotp", {})
    assert info.value.data["action"] == "factor.totp.remove"
    assert "totp" not in info.value.data["methods"]
    code = totp_now(basic_t, secret)
    assert (await verify_totp(basic_t, alice, "factor.totp.remove", code))["code"] == (
        "METHOD_NOT_AVAILABLE"
    )
    with pytest.raises(ConvexError):
        await alice.mutation("sensitive:removeTotp", {})
    await verify_with_password(alice, "factor.totp.remove")
    assert await alice.mutation("sensitive:removeTotp", {}) == {"ok": True}
    assert [m.subject for m in basic_t.outbox][-1] == "An authenticator app was removed"
    assert (await verify_totp(basic_t, alice, LOOK, totp_now(basic_t, secret), "x"))["code"] == (
        "METHOD_NOT_AVAILABLE"
    )


async def test_a_second_app_is_refused_until_the_first_is_removed(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    await enrol_totp(basic_t, alice)
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:enrolTotp", {})
    assert info.value.code == "CONFLICT"


@pytest.mark.parametrize(
    "args",
    [
        {"action": LOOK, "code": 123456},
        {"action": LOOK},
        {"action": LOOK, "code": "1", "extra": 1},
    ],
)
async def test_bad_arguments_throw(alice: UserHandle, args: dict[str, Any]) -> None:
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:verifyTotp", args)
    assert info.value.code == "INVALID_ARGUMENT"


async def test_an_oversized_code_is_a_wrong_code(basic_t: TestBackend, alice: UserHandle) -> None:
    await enrol_totp(basic_t, alice)
    answer = await verify_totp(basic_t, alice, LOOK, "1" * 10_000, "x")
    assert answer == {"ok": False, "code": "INVALID_CODE"}
