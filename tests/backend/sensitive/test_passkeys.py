"""Passkeys, with real assertions from a software authenticator: registration behind a
step-up, step-up bound to one session, action and resource, and every replay refused (the
same assertion twice, a challenge for another target, an old sign counter)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.factor_helpers import (
    passkey_options,
    register_passkey,
    verify_passkey,
    verify_with_password,
)
from tests.support.authenticator import SoftAuthenticator

LOOK = "thing.look"


@pytest.fixture
async def alice(basic_t: TestBackend) -> UserHandle:
    return await basic_t.sign_up("alice@example.com", PASSWORD)


@pytest.fixture
def key() -> SoftAuthenticator:
    return SoftAuthenticator()


async def sessions(t: TestBackend) -> int:
    return len(await t.run(lambda ctx: ctx.db.query("_sessions").collect()))


async def test_registering_needs_a_step_up(alice: UserHandle) -> None:
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:passkeyRegistrationOptions", {})
    assert info.value.data["action"] == "factor.passkey.add"
    assert info.value.data["level"] == 3


async def test_registration_options_require_user_verification(alice: UserHandle) -> None:
    await verify_with_password(alice, "factor.passkey.add")
    answer = await alice.mutation("sensitive:passkeyRegistrationOptions", {})
    options = answer["options"]
    assert options["rp"] == {"id": "testserver", "name": "testserver"}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["user"]["name"] == "alice@example.com"
    assert len(options["challenge"]) >= 43  # 32 bytes


async def test_a_passkey_is_registered_listed_and_offered_first(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    added = await register_passkey(alice, key, "My laptop")
    assert len(added["backupCodes"]) == 10
    (listed,) = await alice.query("sensitive:listPasskeys", {})
    assert listed["name"] == "My laptop"
    assert listed["id"] == added["id"]
    status = await alice.query("sensitive:status", {"action": LOOK, "resource": "x"})
    assert status["methods"] == ["passkey", "password", "backup_code", "email"]
    (mail,) = [m for m in basic_t.outbox if m.subject == "A passkey was added"]
    assert "My laptop" in mail.text
    (row,) = await basic_t.run(lambda ctx: ctx.db.query("_passkeys").collect())
    assert row["credentialId"] == key.id
    assert row["signCount"] == 0


@pytest.mark.parametrize(
    ("forge", "expected"),
    [
        ({"origin": "http://evil.example"}, "INVALID_PASSKEY"),
        ({"uv": False}, "INVALID_PASSKEY"),
    ],
)
async def test_a_forged_registration_is_refused(
    alice: UserHandle, key: SoftAuthenticator, forge: dict[str, Any], expected: str
) -> None:
    await verify_with_password(alice, "factor.passkey.add")
    options = (await alice.mutation("sensitive:passkeyRegistrationOptions", {}))["options"]
    answer = await alice.mutation(
        "sensitive:registerPasskey", {"credential": key.create(options, **forge)}
    )
    assert answer == {"ok": False, "code": expected}
    assert await alice.query("sensitive:listPasskeys", {}) == []


async def test_a_registration_answer_works_once(alice: UserHandle, key: SoftAuthenticator) -> None:
    await verify_with_password(alice, "factor.passkey.add")
    options = (await alice.mutation("sensitive:passkeyRegistrationOptions", {}))["options"]
    credential = key.create(options)
    assert (await alice.mutation("sensitive:registerPasskey", {"credential": credential}))["ok"]
    again = await alice.mutation("sensitive:registerPasskey", {"credential": credential})
    assert again == {"ok": False, "code": "CHALLENGE_EXPIRED"}


async def test_a_credential_cannot_be_registered_by_two_accounts(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    bob = await basic_t.sign_up("bob@example.com", PASSWORD)
    await verify_with_password(bob, "factor.passkey.add")
    options = (await bob.mutation("sensitive:passkeyRegistrationOptions", {}))["options"]
    answer = await bob.mutation("sensitive:registerPasskey", {"credential": key.create(options)})
    assert answer == {"ok": False, "code": "INVALID_PASSKEY"}


async def test_a_passkey_steps_up_without_a_new_session(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    before = await sessions(basic_t)
    options = await passkey_options(alice, LOOK, "x")
    assert options["ok"] is True
    assert options["options"]["userVerification"] == "required"
    assert options["options"]["rpId"] == "testserver"
    assert [c["id"] for c in options["options"]["allowCredentials"]] == [key.id]
    answer = await verify_passkey(alice, LOOK, key.get(options["options"]), "x")
    assert answer["ok"] is True
    assert await alice.mutation("protected:look", {"name": "x"}) is not None
    assert await sessions(basic_t) == before
    (row,) = await basic_t.run(lambda ctx: ctx.db.query("_passkeys").collect())
    assert row["signCount"] == 1
    assert row["lastUsedAt"] is not None


async def test_the_same_assertion_twice_is_refused(
    alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    options = (await passkey_options(alice, LOOK, "x"))["options"]
    assertion = key.get(options)
    assert (await verify_passkey(alice, LOOK, assertion, "x"))["ok"] is True
    assert await verify_passkey(alice, LOOK, assertion, "x") == {
        "ok": False,
        "code": "CHALLENGE_EXPIRED",
    }
    await passkey_options(alice, LOOK, "x")  # a new challenge for the target: still no
    assert (await verify_passkey(alice, LOOK, assertion, "x"))["code"] == "CHALLENGE_EXPIRED"


async def test_a_challenge_for_another_action_or_resource_is_refused(
    alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    for_x = (await passkey_options(alice, LOOK, "x"))["options"]
    assertion = key.get(for_x)
    assert (await verify_passkey(alice, LOOK, assertion, "y"))["code"] == "CHALLENGE_EXPIRED"
    await passkey_options(alice, "thing.poke", "x")
    refused = await verify_passkey(alice, "thing.poke", assertion, "x")
    assert refused["code"] == "CHALLENGE_EXPIRED"
    # the right target still works with its own challenge (a wrong answer spent it, though)
    assert (await verify_passkey(alice, LOOK, assertion, "x"))["ok"] is True


async def test_another_sessions_challenge_is_refused(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    other = await basic_t.sign_in(alice.email, PASSWORD)
    options = (await passkey_options(alice, LOOK, "x"))["options"]
    refused = await verify_passkey(other, LOOK, key.get(options), "x")
    assert refused["code"] == "CHALLENGE_EXPIRED"


async def test_an_old_sign_counter_is_refused(alice: UserHandle, key: SoftAuthenticator) -> None:
    await register_passkey(alice, key)
    for _ in range(2):
        options = (await passkey_options(alice, LOOK, "x"))["options"]
        assert (await verify_passkey(alice, LOOK, key.get(options), "x"))["ok"] is True
    options = (await passkey_options(alice, LOOK, "x"))["options"]
    cloned = key.get(options, counter=2)  # a cloned key, behind the real one
    assert (await verify_passkey(alice, LOOK, cloned, "x"))["code"] == "INVALID_PASSKEY"


async def test_a_challenge_lives_two_minutes(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    options = (await passkey_options(alice, LOOK, "x"))["options"]
    basic_t.clock.advance(minutes=2, seconds=1)
    assert (await verify_passkey(alice, LOOK, key.get(options), "x"))["code"] == (
        "CHALLENGE_EXPIRED"
    )


@pytest.mark.parametrize(
    "forge",
    [
        {"origin": "http://evil.example"},
        {"rp_id": "evil.example"},
        {"uv": False},
        {"tamper": True},
    ],
)
async def test_a_forged_assertion_is_refused(
    alice: UserHandle, key: SoftAuthenticator, forge: dict[str, Any]
) -> None:
    await register_passkey(alice, key)
    options = (await passkey_options(alice, LOOK, "x"))["options"]
    answer = await verify_passkey(alice, LOOK, key.get(options, **forge), "x")
    assert answer == {"ok": False, "code": "INVALID_PASSKEY"}
    with pytest.raises(ConvexError):
        await alice.mutation("protected:look", {"name": "x"})


async def test_another_users_passkey_is_refused(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    bob = await basic_t.sign_up("bob@example.com", PASSWORD)
    await register_passkey(bob, SoftAuthenticator())
    options = (await passkey_options(bob, LOOK, "x"))["options"]
    assert (await verify_passkey(bob, LOOK, key.get(options), "x"))["code"] == "INVALID_PASSKEY"


async def test_removing_a_passkey_is_not_proven_by_it(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    first = (await register_passkey(alice, key))["id"]
    action = "factor.passkey.remove"
    assert (await passkey_options(alice, action, first))["code"] == "METHOD_NOT_AVAILABLE"
    with pytest.raises(ConvexError) as info:
        await alice.mutation("sensitive:removePasskey", {"id": first})
    assert "passkey" not in info.value.data["methods"]
    phone = SoftAuthenticator()
    await register_passkey(alice, phone, "Phone")
    options = (await passkey_options(alice, action, first))["options"]
    assert [c["id"] for c in options["allowCredentials"]] == [phone.id]
    # the passkey being removed cannot answer, even to a challenge for its removal
    assert (await verify_passkey(alice, action, key.get(options), first))["code"] == (
        "INVALID_PASSKEY"
    )
    options = (await passkey_options(alice, action, first))["options"]
    assert (await verify_passkey(alice, action, phone.get(options), first))["ok"] is True
    assert await alice.mutation("sensitive:removePasskey", {"id": first}) == {"ok": True}
    assert [p["name"] for p in await alice.query("sensitive:listPasskeys", {})] == ["Phone"]
    assert "A passkey was removed" in [m.subject for m in basic_t.outbox]


async def test_nobody_removes_or_renames_anothers_passkey(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    mine = (await register_passkey(alice, key))["id"]
    bob = await basic_t.sign_up("bob@example.com", PASSWORD)
    for path, args in [
        ("sensitive:removePasskey", {"id": mine}),
        ("sensitive:renamePasskey", {"id": mine, "name": "gotcha"}),
    ]:
        with pytest.raises(ConvexError) as info:
            await bob.mutation(path, args)
        assert info.value.code == "NOT_FOUND"
    with pytest.raises(ConvexError) as forbidden:
        await bob.mutation(
            "sensitive:verifyPassword",
            {"action": "factor.passkey.remove", "resource": mine, "password": PASSWORD},
        )
    assert forbidden.value.code == "FORBIDDEN"
    await alice.mutation("sensitive:renamePasskey", {"id": mine, "name": "Work laptop"})
    assert (await alice.query("sensitive:listPasskeys", {}))[0]["name"] == "Work laptop"


async def test_garbage_credentials_are_coded_refusals(
    alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    await passkey_options(alice, LOOK, "x")
    garbage = {"id": "!!", "response": {"clientDataJSON": "%%%"}}
    assert (await verify_passkey(alice, LOOK, garbage, "x"))["code"] == "CHALLENGE_EXPIRED"
    with pytest.raises(ConvexError) as info:
        await verify_passkey(alice, LOOK, {"pad": "x" * 20_000}, "x")
    assert info.value.code == "INVALID_ARGUMENT"


async def test_no_challenge_or_key_material_reaches_the_audit_log(
    basic_t: TestBackend, alice: UserHandle, key: SoftAuthenticator
) -> None:
    await register_passkey(alice, key)
    options = (await passkey_options(alice, LOOK, "x"))["options"]
    assertion = key.get(options)
    await verify_passkey(alice, LOOK, assertion, "x")
    events = await basic_t.run(lambda ctx: ctx.db.query("_audit_events").collect())
    text = json.dumps(events)
    assert options["challenge"] not in text
    assert assertion["response"]["signature"] not in text
    assert key.id not in text
    kinds = [e["event"] for e in events if e.get("method") == "passkey"]
    assert "challenge.issued" in kinds
    assert "verification.passed" in kinds
    (challenges,) = [await basic_t.run(lambda ctx: ctx.db.query("_webauthn_challenges").collect())]
    assert challenges == []  # spent
