"""Every method against every level that needs a grant: the grant it mints passes a level-2
action on a stale session, a level-3 action while it lives, and a level-4 action once; and
races on one proof: a code, an assertion, a backup code spent twice at once pass once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

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

Prover = Callable[[str, str], Awaitable[dict[str, Any]]]
LEVELS = [("thing.quick", "protected:quick", 2), ("thing.look", "protected:look", 3)]


async def prover(t: TestBackend, user: UserHandle, method: str) -> Prover:
    """Set ``method`` up for ``user`` and answer a function that proves one (action,
    resource) with it."""
    if method == "passkey":
        key = SoftAuthenticator()
        await register_passkey(user, key)

        async def with_passkey(action: str, resource: str) -> dict[str, Any]:
            options = (await passkey_options(user, action, resource))["options"]
            return await verify_passkey(user, action, key.get(options), resource)

        return with_passkey
    if method == "totp":
        secret, _ = await enrol_totp(t, user)

        async def with_app(action: str, resource: str) -> dict[str, Any]:
            t.clock.advance(seconds=30)  # a step not yet used
            return await verify_totp(t, user, action, totp_now(t, secret), resource)

        return with_app
    if method == "backup_code":
        _, codes = await enrol_totp(t, user)

        async def with_backup(action: str, resource: str) -> dict[str, Any]:
            args = {"action": action, "resource": resource, "code": codes.pop()}
            return dict(await user.mutation("sensitive:verifyBackupCode", args))

        return with_backup
    if method == "password":

        async def with_password(action: str, resource: str) -> dict[str, Any]:
            args = {"action": action, "resource": resource, "password": PASSWORD}
            return dict(await user.mutation("sensitive:verifyPassword", args))

        return with_password

    async def with_email(action: str, resource: str) -> dict[str, Any]:
        t.clock.advance(seconds=61)  # past the resend cooldown
        target = {"action": action, "resource": resource}
        assert (await user.mutation("sensitive:sendEmailCode", target))["ok"] is True
        code = latest_code(t, user.email)
        return dict(await user.mutation("sensitive:verifyEmailCode", {**target, "code": code}))

    return with_email


METHODS = ["passkey", "totp", "password", "backup_code", "email"]


@pytest.mark.parametrize("method", METHODS)
async def test_each_method_satisfies_levels_two_to_four(basic_t: TestBackend, method: str) -> None:
    alice = await basic_t.sign_up(f"{method.replace('_', '')}@example.com", PASSWORD)
    prove = await prover(basic_t, alice, method)
    basic_t.clock.advance(minutes=11)  # past level 2's freshness window
    for action, path, level in LEVELS:
        with pytest.raises(ConvexError) as refused:
            await alice.mutation(path, {"name": action})
        assert refused.value.data["level"] == level
        assert refused.value.data["methods"][0] == method or method in ("backup_code", "email")
        assert (await prove(action, action))["ok"] is True
        assert await alice.mutation(path, {"name": action}) == 1
        assert await alice.mutation(path, {"name": action}) == 2  # the grant stays below 4
    assert (await prove("thing.poke", "p"))["ok"] is True
    assert await alice.mutation("protected:poke", {"name": "p"}) == 1
    with pytest.raises(ConvexError) as spent:  # level 4: the grant went with the call
        await alice.mutation("protected:poke", {"name": "p"})
    assert spent.value.code == "SENSITIVE_VERIFICATION_REQUIRED"
    events = await basic_t.run(lambda ctx: ctx.db.query("_audit_events").collect())
    passed = [e for e in events if e["event"] == "verification.passed"]
    assert {e["method"] for e in passed} >= {method}


async def test_one_app_code_raced_twice_passes_once(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("race@example.com", PASSWORD)
    secret, _ = await enrol_totp(basic_t, alice)
    code = totp_now(basic_t, secret)
    answers = await asyncio.gather(
        verify_totp(basic_t, alice, "thing.look", code, "a"),
        verify_totp(basic_t, alice, "thing.look", code, "b"),
    )
    assert sorted(a["ok"] for a in answers) == [False, True]


async def test_one_backup_code_raced_twice_passes_once(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("race@example.com", PASSWORD)
    _, codes = await enrol_totp(basic_t, alice)
    answers = await asyncio.gather(
        *(
            alice.mutation(
                "sensitive:verifyBackupCode",
                {"action": "thing.look", "resource": r, "code": codes[0]},
            )
            for r in ("a", "b")
        )
    )
    assert sorted(a["ok"] for a in answers) == [False, True]


async def test_one_assertion_raced_twice_passes_once(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("race@example.com", PASSWORD)
    key = SoftAuthenticator()
    await register_passkey(alice, key)
    options = (await passkey_options(alice, "thing.look", "a"))["options"]
    assertion = key.get(options)
    answers = await asyncio.gather(
        verify_passkey(alice, "thing.look", assertion, "a"),
        verify_passkey(alice, "thing.look", assertion, "a"),
    )
    assert sorted(a["ok"] for a in answers) == [False, True]


@pytest.mark.rate_limits
async def test_passkey_options_are_rate_limited(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("many@example.com", PASSWORD)
    await register_passkey(alice, SoftAuthenticator())
    answers = [(await passkey_options(alice, "thing.look", "a")).get("ok") for _ in range(21)]
    assert answers[:20] == [True] * 20
    refused = await passkey_options(alice, "thing.look", "a")
    assert refused["code"] == "RATE_LIMITED"
    assert refused["retryAfterMs"] > 0
