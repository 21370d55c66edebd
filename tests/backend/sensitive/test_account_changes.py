"""Changing the password and the address: behind a step-up the changed factor cannot prove,
the current password checked on the shared lockout, the address confirmed from both sides,
and every change mailed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.sensitive.account import confirm_email_change
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.test_levels import latest_code

NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"/api/auth/change-email/verify\?token=(\S+)")


@pytest.fixture
async def alice(basic_t: TestBackend) -> UserHandle:
    return await basic_t.sign_up("alice@example.com", PASSWORD)


async def email_grant(t: TestBackend, user: UserHandle, action: str) -> None:
    assert (await user.mutation("sensitive:sendEmailCode", {"action": action}))["ok"] is True
    code = latest_code(t, user.email)
    answer = await user.mutation("sensitive:verifyEmailCode", {"action": action, "code": code})
    assert answer["ok"] is True


async def change(user: UserHandle, current: str, **extra: Any) -> Any:
    return await user.mutation(
        "sensitive:changePassword",
        {"currentPassword": current, "newPassword": NEW_PASSWORD, **extra},
    )


async def test_a_password_change_needs_a_step_up_the_password_cannot_give(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    with pytest.raises(ConvexError) as info:
        await change(alice, PASSWORD)
    assert info.value.data["action"] == "account.password.change"
    assert info.value.data["methods"] == ["email"]
    refused = await alice.mutation(
        "sensitive:verifyPassword", {"action": "account.password.change", "password": PASSWORD}
    )
    assert refused["code"] == "METHOD_NOT_AVAILABLE"


async def test_the_password_changes_with_a_grant_and_the_current_password(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    other = await basic_t.sign_in(alice.email, PASSWORD)
    await email_grant(basic_t, alice, "account.password.change")
    assert await change(alice, "not the password") == {"ok": False, "code": "INVALID_PASSWORD"}
    assert await change(alice, PASSWORD, revokeOtherSessions=True) == {"ok": True}
    assert "Your password was changed" in [m.subject for m in basic_t.outbox]
    await basic_t.sign_in(alice.email, NEW_PASSWORD)
    with pytest.raises(ConvexError) as old:  # the old password no longer signs in
        await basic_t.sign_in(alice.email, PASSWORD)
    assert old.value.code == "INVALID_EMAIL_OR_PASSWORD"
    with pytest.raises(ConvexError) as info:  # the other session was signed out
        await other.query("sensitive:listPasskeys", {})
    assert info.value.code == "UNAUTHENTICATED"


async def test_a_weak_new_password_is_refused_before_anything(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    with pytest.raises(ConvexError) as info:
        await alice.mutation(
            "sensitive:changePassword", {"currentPassword": PASSWORD, "newPassword": "short"}
        )
    assert str(info.value.code).startswith("PASSWORD_TOO")


async def test_an_address_change_is_confirmed_from_both_addresses(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:changeEmail", {"newEmail": "new@example.com"})
    assert info.value.data["action"] == "account.email.change"
    assert "email" not in info.value.data["methods"]
    await alice.mutation(
        "sensitive:verifyPassword", {"action": "account.email.change", "password": PASSWORD}
    )
    assert await alice.mutation("sensitive:changeEmail", {"newEmail": "New@Example.com"}) == {
        "ok": True
    }
    mails = {m.to: m for m in basic_t.outbox if m.subject.startswith("Confirm the change")}
    assert set(mails) == {"alice@example.com", "new@example.com"}
    tokens = {to: LINK.search(m.text).group(1) for to, m in mails.items()}  # type: ignore[union-attr]
    assert await confirm_email_change(basic_t.engine, tokens["new@example.com"]) == "pending"
    with pytest.raises(ConvexError):  # a link works once
        await confirm_email_change(basic_t.engine, tokens["new@example.com"] + "x")
    profile = await basic_t.run(lambda ctx: ctx.db.get(alice.user_id))
    assert profile is not None
    assert profile["email"] == "alice@example.com"
    assert await confirm_email_change(basic_t.engine, tokens["alice@example.com"]) == "changed"
    profile = await basic_t.run(lambda ctx: ctx.db.get(alice.user_id))
    assert profile is not None
    assert profile["email"] == "new@example.com"
    told = [m.to for m in basic_t.outbox if m.subject == "Your email address was changed"]
    assert sorted(told) == ["alice@example.com", "new@example.com"]
    with pytest.raises(ConvexError) as gone:
        await confirm_email_change(basic_t.engine, tokens["alice@example.com"])
    assert gone.value.code == "INVALID_TOKEN"


async def test_a_taken_address_is_answered_alike_and_never_changed_to(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    await basic_t.sign_up("bob@example.com", PASSWORD)
    await alice.mutation(
        "sensitive:verifyPassword", {"action": "account.email.change", "password": PASSWORD}
    )
    assert await alice.mutation("sensitive:changeEmail", {"newEmail": "bob@example.com"}) == {
        "ok": True
    }
    to_bob = [m for m in basic_t.outbox if m.to == "bob@example.com"]
    assert to_bob[-1].subject == "Someone tried to move an account to your address"
    assert "/api/auth/" not in to_bob[-1].text


async def test_confirmation_links_expire(basic_t: TestBackend, alice: UserHandle) -> None:
    await alice.mutation(
        "sensitive:verifyPassword", {"action": "account.email.change", "password": PASSWORD}
    )
    await alice.mutation("sensitive:changeEmail", {"newEmail": "new@example.com"})
    mail = next(m for m in basic_t.outbox if m.subject.startswith("Confirm the change"))
    found = LINK.search(mail.text)
    assert found is not None
    basic_t.clock.advance(hours=1, seconds=1)
    with pytest.raises(ConvexError) as info:
        await confirm_email_change(basic_t.engine, found.group(1))
    assert info.value.code == "TOKEN_EXPIRED"


async def test_an_account_with_only_its_address_changes_it_by_email(basic_t: TestBackend) -> None:
    bob = await basic_t.sign_in_magic_link("bob@example.com")
    status = await bob.query("sensitive:status", {"action": "account.email.change"})
    assert status["methods"] == ["email"]
    assert status["fallback"] is True
    await email_grant(basic_t, bob, "account.email.change")
    assert await bob.mutation("sensitive:changeEmail", {"newEmail": "robert@example.com"}) == {
        "ok": True
    }


async def test_with_a_password_an_email_code_cannot_change_the_address(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    refused = await alice.mutation("sensitive:sendEmailCode", {"action": "account.email.change"})
    assert refused["code"] == "METHOD_NOT_AVAILABLE"
