"""Backup codes: handed out once at the first factor, single use, keyed hashes, audited and
mailed when used, regenerable only behind a step-up that they cannot prove themselves."""

from __future__ import annotations

from typing import Any

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.factor_helpers import enrol_totp, verify_with_password

LOOK = "thing.look"


@pytest.fixture
async def alice(basic_t: TestBackend) -> UserHandle:
    return await basic_t.sign_up("alice@example.com", PASSWORD)


async def use(user: UserHandle, code: str, action: str = LOOK, resource: str | None = "x") -> Any:
    args: dict[str, Any] = {"action": action, "code": code}
    if resource is not None:
        args["resource"] = resource
    return await user.mutation("sensitive:verifyBackupCode", args)


async def test_without_a_second_factor_there_are_no_codes(alice: UserHandle) -> None:
    assert (await use(alice, "abcde-fghjk"))["code"] == "METHOD_NOT_AVAILABLE"


async def test_a_code_works_once_and_its_use_is_mailed_and_audited(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    _, codes = await enrol_totp(basic_t, alice)
    assert len(codes) == 10
    first = codes[0]
    answer = await use(alice, first.upper().replace("-", " "))  # typed loosely still works
    assert answer["ok"] is True
    assert answer["codesLeft"] == 9
    assert await alice.mutation("protected:look", {"name": "x"}) is not None
    assert await use(alice, first) == {"ok": False, "code": "INVALID_CODE"}
    (mail,) = [m for m in basic_t.outbox if m.subject == "A backup code was used"]
    assert "Look at x" in mail.text
    assert "9 unused backup codes left" in mail.text
    assert first not in mail.text
    events = await basic_t.run(lambda ctx: ctx.db.query("_audit_events").collect())
    outcomes = [(e["event"], e.get("detail")) for e in events if e.get("method") == "backup_code"]
    assert ("verification.passed", None) in outcomes
    assert ("verification.failed", "used code") in outcomes


async def test_codes_are_stored_as_keyed_hashes(basic_t: TestBackend, alice: UserHandle) -> None:
    _, codes = await enrol_totp(basic_t, alice)
    rows = await basic_t.run(lambda ctx: ctx.db.query("_backup_codes").collect())
    assert len(rows) == 10
    text = repr(rows)
    for code in codes:
        assert code not in text
        assert code.replace("-", "") not in text
    assert all(len(r["codeHash"]) == 64 for r in rows)


async def test_a_code_of_another_user_is_wrong(basic_t: TestBackend, alice: UserHandle) -> None:
    _, alices = await enrol_totp(basic_t, alice)
    bob = await basic_t.sign_up("bob@example.com", PASSWORD)
    await enrol_totp(basic_t, bob)
    assert (await use(bob, alices[0]))["code"] == "INVALID_CODE"
    assert (await use(alice, alices[0]))["ok"] is True


async def test_regenerating_needs_a_step_up_not_proven_by_a_backup_code(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    _, codes = await enrol_totp(basic_t, alice)
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:regenerateBackupCodes", {})
    assert info.value.data["action"] == "factor.backup_codes.regenerate"
    assert "backup_code" not in info.value.data["methods"]
    refused = await use(alice, codes[0], "factor.backup_codes.regenerate", None)
    assert refused["code"] == "METHOD_NOT_AVAILABLE"
    await verify_with_password(alice, "factor.backup_codes.regenerate")
    fresh = await alice.mutation("sensitive:regenerateBackupCodes", {})
    assert fresh["ok"] is True
    assert len(fresh["codes"]) == 10
    assert not set(fresh["codes"]) & set(codes)
    assert (await use(alice, codes[0]))["code"] == "INVALID_CODE"  # the old ones are void
    assert (await use(alice, fresh["codes"][0]))["ok"] is True
    assert "New backup codes were made" in [m.subject for m in basic_t.outbox]


@pytest.mark.rate_limits
async def test_wrong_codes_are_rate_limited(basic_t: TestBackend, alice: UserHandle) -> None:
    await enrol_totp(basic_t, alice)
    answers = [(await use(alice, f"aaaaa-aaa{c}{c}"))["code"] for c in "abcdef"]
    assert answers[:5] == ["INVALID_CODE"] * 5
    assert answers[5] == "RATE_LIMITED"


async def test_garbage_is_a_wrong_code(basic_t: TestBackend, alice: UserHandle) -> None:
    await enrol_totp(basic_t, alice)
    assert (await use(alice, "x" * 5000))["code"] == "INVALID_CODE"
    assert (await use(alice, "'; drop table --"))["code"] == "INVALID_CODE"
