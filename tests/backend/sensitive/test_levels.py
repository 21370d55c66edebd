"""require_sensitive_action through the demo app: every level against every method, scoping,
grants, and who is offered what."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.sensitive.grants import mint_grant
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD

SVR = "SENSITIVE_VERIFICATION_REQUIRED"


async def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ConvexError) as info:
        await call
    assert info.value.code == SVR, info.value.data
    return dict(info.value.data)


async def verify_by_password(user: UserHandle, action: str, resource: str | None) -> None:
    answer = await user.mutation(
        "sensitive:verifyPassword", {"action": action, "resource": resource, "password": PASSWORD}
    )
    assert answer["ok"] is True, answer


async def verify_by_email(
    t: TestBackend, user: UserHandle, action: str, resource: str | None
) -> None:
    sent = await user.mutation("sensitive:sendEmailCode", {"action": action, "resource": resource})
    assert sent["ok"] is True, sent
    code = latest_code(t, user.email)
    answer = await user.mutation(
        "sensitive:verifyEmailCode", {"action": action, "resource": resource, "code": code}
    )
    assert answer["ok"] is True, answer


def latest_code(t: TestBackend, email: str) -> str:
    mail = [m for m in t.outbox if m.to == email][-1]
    found = re.search(r"\b(\d{6})\b", mail.text)
    assert found is not None
    return found.group(1)


async def setup_org(t: TestBackend) -> tuple[UserHandle, str]:
    alice = await t.sign_up("alice@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    return alice, org


async def test_level_1_passes_on_a_fresh_session_then_needs_a_grant(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    await alice.mutation("orgs:rename", {"orgId": org, "name": "Acme 2"})
    demo.clock.advance(minutes=61)
    data = await refused(alice.mutation("orgs:rename", {"orgId": org, "name": "Acme 3"}))
    assert data["level"] == 1
    assert data["action"] == "org.rename"
    assert data["resource"] == org
    assert data["description"] == 'Rename organization "Acme 2"'
    assert data["methods"] == ["password", "email"]
    await verify_by_password(alice, "org.rename", org)
    await alice.mutation("orgs:rename", {"orgId": org, "name": "Acme 3"})
    await alice.mutation("orgs:rename", {"orgId": org, "name": "Acme 4"})  # level 1: not spent
    assert (await alice.query("orgs:list", {}))[0]["name"] == "Acme 4"


async def test_level_2_has_a_shorter_window(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "member"})
    await alice.mutation("members:setRole", {"orgId": org, "userId": bob.user_id, "role": "admin"})
    demo.clock.advance(minutes=11)
    data = await refused(
        alice.mutation("members:setRole", {"orgId": org, "userId": bob.user_id, "role": "member"})
    )
    assert data["level"] == 2
    assert data["description"] == 'Change the role of bob@example.com in "Acme"'
    await verify_by_email(demo, alice, "member.role", data["resource"])
    await alice.mutation("members:setRole", {"orgId": org, "userId": bob.user_id, "role": "member"})


async def test_level_3_needs_a_grant_even_when_fresh(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "member"})
    data = await refused(alice.mutation("members:remove", {"orgId": org, "userId": bob.user_id}))
    assert data["level"] == 3
    await verify_by_password(alice, "member.remove", data["resource"])
    status = await alice.query(
        "sensitive:status", {"action": "member.remove", "resource": data["resource"]}
    )
    assert status["satisfied"] is True
    assert "grantExpiresAt" in status
    await alice.mutation("members:remove", {"orgId": org, "userId": bob.user_id})
    assert [m["email"] for m in await alice.query("members:list", {"orgId": org})] == [alice.email]


async def test_level_4_spends_its_grant_and_a_failed_call_keeps_it(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("alice@example.com", PASSWORD)
    await refused(alice.mutation("protected:poke", {"name": "a"}))
    await verify_by_password(alice, "thing.poke", "a")
    with pytest.raises(Exception, match="Server Error"):
        await alice.mutation("protected:poke_then_fail", {"name": "a"})
    assert await alice.mutation("protected:poke", {"name": "a"}) == 1  # the grant survived
    await refused(alice.mutation("protected:poke", {"name": "a"}))  # and is now spent


async def test_twenty_racing_calls_spend_one_grant_once(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("alice@example.com", PASSWORD)
    await verify_by_password(alice, "thing.poke", "race")
    results = await asyncio.gather(
        *(alice.mutation("protected:poke", {"name": "race"}) for _ in range(20)),
        return_exceptions=True,
    )
    successes = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, ConvexError)]
    assert successes == [1]
    assert len(failures) == 19
    assert all(f.code == SVR for f in failures)


async def test_grants_are_bound_to_action_resource_and_session_and_expire(
    basic_t: TestBackend,
) -> None:
    alice = await basic_t.sign_up("alice@example.com", PASSWORD)
    await verify_by_password(alice, "thing.look", "a")
    await refused(alice.mutation("protected:look", {"name": "b"}))  # another resource
    await refused(alice.mutation("protected:poke", {"name": "a"}))  # another action
    other_session = await basic_t.sign_in("alice@example.com", PASSWORD)
    await refused(other_session.mutation("protected:look", {"name": "a"}))  # another session
    assert await alice.mutation("protected:look", {"name": "a"}) == 1
    basic_t.clock.advance(minutes=5, seconds=1)
    await refused(alice.mutation("protected:look", {"name": "a"}))  # expired


async def test_an_unregistered_action_fails_closed_as_level_4(basic_t: TestBackend) -> None:
    alice = await basic_t.sign_up("alice@example.com", PASSWORD)
    data = await refused(alice.mutation("protected:unregistered", {}))
    assert data["level"] == 4


async def test_methods_offered_depend_on_the_account(demo: TestBackend) -> None:
    owners = [
        (await demo.sign_up("pw@example.com", PASSWORD), ["password", "email"]),
        (await demo.sign_in_oauth("google", "oauth@example.com"), ["email"]),
        (await demo.sign_in_magic_link("link@example.com"), ["email"]),
    ]
    for user, methods in owners:
        org = await user.mutation("orgs:create", {"name": "Mine"})
        data = await refused(user.mutation("orgs:remove", {"orgId": org}))
        assert data["methods"] == methods
        if methods == ["email"]:
            answer = await user.mutation(
                "sensitive:verifyPassword",
                {"action": "org.delete", "resource": org, "password": "x" * 10},
            )
            assert answer == {"ok": False, "code": "METHOD_NOT_AVAILABLE"}
        await verify_by_email(demo, user, "org.delete", org)
        await user.mutation("orgs:remove", {"orgId": org})
        assert await user.query("orgs:list", {}) == []


async def test_a_forbidden_caller_is_forbidden_whatever_its_grants(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "member"})
    with pytest.raises(ConvexError) as info:  # no verification for what one may not do...
        await verify_by_password(bob, "org.delete", org)
    assert info.value.code == "FORBIDDEN"

    async def grant(ctx: Any) -> None:  # ...and a grant that got there anyway changes nothing
        await mint_grant(
            ctx.db,
            user_id=bob.user_id,
            session_id=str(bob.session_id),
            action="org.delete",
            resource=org,
            level=4,
            method="password",
            lifetime_ms=60_000,
        )

    await demo.run(grant)
    with pytest.raises(ConvexError) as info:
        await bob.mutation("orgs:remove", {"orgId": org})
    assert info.value.code == "FORBIDDEN"
    outsider = await demo.sign_up("eve@example.com", PASSWORD)
    with pytest.raises(ConvexError) as info:
        await outsider.mutation("orgs:remove", {"orgId": org})
    assert info.value.code == "NOT_FOUND"


async def test_a_revoked_session_is_unauthenticated_whatever_its_grants(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    await verify_by_password(alice, "org.delete", org)
    await demo.auth.sign_out(alice.token)
    with pytest.raises(ConvexError) as info:
        await alice.mutation("orgs:remove", {"orgId": org})
    assert info.value.code == "UNAUTHENTICATED"
    with pytest.raises(ConvexError) as info:
        await alice.mutation(
            "sensitive:verifyPassword",
            {"action": "org.delete", "resource": org, "password": PASSWORD},
        )
    assert info.value.code == "UNAUTHENTICATED"


async def test_freshness_is_not_refreshed_by_activity(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    for _ in range(7):  # busy for 70 minutes
        demo.clock.advance(minutes=10)
        await alice.query("orgs:list", {})
    await refused(alice.mutation("orgs:rename", {"orgId": org, "name": "Still me"}))
    fresh = await demo.sign_in("alice@example.com", PASSWORD)  # signing in again is fresh
    await fresh.mutation("orgs:rename", {"orgId": org, "name": "Still me"})


async def test_deleting_an_account(demo: TestBackend) -> None:
    alice, org = await setup_org(demo)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "member"})
    solo = await alice.mutation("orgs:create", {"name": "Solo"})
    with pytest.raises(ConvexError) as info:
        await alice.mutation("account:remove", {})
    assert info.value.code == "SOLE_OWNER"
    assert info.value.data["orgs"] == [{"orgId": org, "name": "Acme"}]
    await alice.mutation("members:setRole", {"orgId": org, "userId": bob.user_id, "role": "owner"})
    await refused(alice.mutation("account:remove", {}))
    await verify_by_password(alice, "account.delete", None)
    await alice.mutation("account:remove", {})
    assert [m["email"] for m in await bob.query("members:list", {"orgId": org})] == [bob.email]
    assert await demo.run(lambda ctx: ctx.db.get(solo)) is None
    assert await alice.query("account:me", {}) is None
    with pytest.raises(ConvexError) as info:
        await demo.sign_in("alice@example.com", PASSWORD)
    assert info.value.code == "INVALID_EMAIL_OR_PASSWORD"
    trail = await demo.run(lambda ctx: ctx.db.query("_audit_events").collect())
    assert any(e["event"] == "action.performed" and e["action"] == "account.delete" for e in trail)
