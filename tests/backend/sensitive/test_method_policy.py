"""Which methods a user is offered: what they have, strongest first; an action that demands
a passkey or an app offers only those (and backup codes), and falls back to email, saying so,
only for a user who has neither. A method not offered mints nothing."""

from __future__ import annotations

from typing import Any

import pytest

from backend.engine import FunctionFailed
from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.factor_helpers import (
    enrol_totp,
    passkey_options,
    register_passkey,
    totp_now,
    verify_passkey,
    verify_totp,
)
from tests.backend.sensitive.test_levels import latest_code
from tests.support.authenticator import SoftAuthenticator

VAULT = {"action": "thing.vault", "resource": "v"}


@pytest.fixture
async def alice(basic_t: TestBackend) -> UserHandle:
    return await basic_t.sign_up("alice@example.com", PASSWORD)


async def refusal(user: UserHandle) -> dict[str, Any]:
    with pytest.raises(ConvexError) as info:
        await user.mutation("protected:vault", {"name": "v"})
    assert info.value.code == "SENSITIVE_VERIFICATION_REQUIRED"
    return dict(info.value.data)


async def test_every_factor_is_listed_strongest_first(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    await enrol_totp(basic_t, alice)
    await register_passkey(alice, SoftAuthenticator())
    status = await alice.query("sensitive:status", {"action": "thing.look", "resource": "x"})
    assert status["methods"] == ["passkey", "totp", "password", "backup_code", "email"]
    assert "fallback" not in status


async def test_without_a_strong_factor_the_demanding_action_falls_back_to_email(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    data = await refusal(alice)
    assert data["methods"] == ["email"]
    assert data["fallback"] is True
    status = await alice.query("sensitive:status", VAULT)
    assert status["methods"] == ["email"]
    assert status["fallback"] is True
    refused = await alice.mutation("sensitive:verifyPassword", {**VAULT, "password": PASSWORD})
    assert refused["code"] == "METHOD_NOT_AVAILABLE"
    assert (await alice.mutation("sensitive:sendEmailCode", VAULT))["ok"] is True
    code = latest_code(basic_t, alice.email)
    assert (await alice.mutation("sensitive:verifyEmailCode", {**VAULT, "code": code}))["ok"]
    assert await alice.mutation("protected:vault", {"name": "v"}) == 1


async def test_with_an_app_only_the_app_and_backup_codes_are_offered(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    secret, _ = await enrol_totp(basic_t, alice)
    data = await refusal(alice)
    assert data["methods"] == ["totp", "backup_code"]
    assert "fallback" not in data
    refused = await alice.mutation("sensitive:verifyPassword", {**VAULT, "password": PASSWORD})
    assert refused["code"] == "METHOD_NOT_AVAILABLE"
    assert (await alice.mutation("sensitive:sendEmailCode", VAULT))["code"] == (
        "METHOD_NOT_AVAILABLE"
    )
    assert (await verify_totp(basic_t, alice, "thing.vault", totp_now(basic_t, secret), "v"))[
        "ok"
    ] is True
    assert await alice.mutation("protected:vault", {"name": "v"}) == 1


async def test_with_a_passkey_the_passkey_is_offered(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    key = SoftAuthenticator()
    await register_passkey(alice, key)
    assert (await refusal(alice))["methods"] == ["passkey", "backup_code"]
    options = (await passkey_options(alice, "thing.vault", "v"))["options"]
    assert (await verify_passkey(alice, "thing.vault", key.get(options), "v"))["ok"] is True
    assert await alice.mutation("protected:vault", {"name": "v"}) == 1


async def test_a_critical_action_is_mailed_with_time_and_client(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    args = {"action": "thing.poke", "resource": "p", "password": PASSWORD}
    assert (await alice.mutation("sensitive:verifyPassword", args))["ok"] is True
    assert await alice.mutation("protected:poke", {"name": "p"}) == 1
    (mail,) = [m for m in basic_t.outbox if m.subject.startswith("Done:")]
    assert mail.subject == "Done: Poke p"
    assert mail.to == alice.email
    assert "TestBackend at 127.0.0.1" in mail.text
    assert "2026-01-01" in mail.text


async def test_a_critical_action_that_fails_mails_nothing(
    basic_t: TestBackend, alice: UserHandle
) -> None:
    args = {"action": "thing.poke", "resource": "p", "password": PASSWORD}
    await alice.mutation("sensitive:verifyPassword", args)
    with pytest.raises(FunctionFailed, match="failed after the check"):
        await alice.mutation("protected:poke_then_fail", {"name": "p"})
    assert not [m for m in basic_t.outbox if m.subject.startswith("Done:")]


def test_an_action_names_known_methods_only() -> None:
    from backend.sensitive import SensitiveAction

    with pytest.raises(TypeError):
        SensitiveAction("x.y", 3, methods={"sms"})
    with pytest.raises(TypeError):
        SensitiveAction("x.y", 3, methods=set())


async def test_factors_sums_up_what_the_user_has(basic_t: TestBackend, alice: UserHandle) -> None:
    assert await alice.query("sensitive:factors", {}) == {
        "passkeys": 0,
        "totp": False,
        "backupCodesLeft": 0,
    }
    await enrol_totp(basic_t, alice)
    await register_passkey(alice, SoftAuthenticator())
    assert await alice.query("sensitive:factors", {}) == {
        "passkeys": 1,
        "totp": True,
        "backupCodesLeft": 10,
    }


def test_the_offers_know_emails_name_and_the_service_every_method() -> None:
    """``offers.py`` names email without importing it (the methods depend on the offers)."""
    from backend.sensitive import email_code, methods, offers

    assert offers.EMAIL == email_code.NAME == methods.EMAIL
    assert [m.name for m in methods.METHODS] == [
        "passkey",
        "totp",
        "password",
        "backup_code",
        "email",
    ]
