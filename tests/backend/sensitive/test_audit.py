"""The audit log: a scripted scenario leaves exactly the events it should, durably."""

from __future__ import annotations

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.test_levels import latest_code


@pytest.mark.rate_limits
async def test_a_scripted_scenario_leaves_each_event_exactly_once(demo: TestBackend) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    target = {"action": "org.delete", "resource": org}

    with pytest.raises(ConvexError):  # 1. refused: no grant (the mutation rolls back)
        await alice.mutation("orgs:remove", {"orgId": org})
    wrong = await alice.mutation(
        "sensitive:verifyPassword", {**target, "password": "wrong horse x"}
    )
    assert wrong["code"] == "INVALID_PASSWORD"  # 2. a failed password check
    sent = await alice.mutation("sensitive:sendEmailCode", target)  # 3. a code sent
    assert sent["ok"]
    code = latest_code(demo, alice.email)
    bad = f"{(int(code) + 1) % 10**6:06d}"
    assert (await alice.mutation("sensitive:verifyEmailCode", {**target, "code": bad}))[
        "ok"
    ] is False
    resend = await alice.mutation("sensitive:sendEmailCode", target)  # 5. rate limited (cooldown)
    assert resend["code"] == "RATE_LIMITED"
    assert (await alice.mutation("sensitive:verifyEmailCode", {**target, "code": code}))["ok"]
    await alice.mutation("orgs:remove", {"orgId": org})  # 7. spent and performed

    events = list(reversed(await alice.query("audit:list", {})))
    assert [(e["event"], e.get("method"), e["outcome"]) for e in events] == [
        ("action.refused", None, "verification-required"),
        ("verification.failed", "password", "failed"),
        ("code.sent", "email", "sent"),
        ("verification.failed", "email", "failed"),
        ("rate.limited", "email", "refused"),
        ("verification.passed", "email", "passed"),
        ("grant.minted", "email", "minted"),
        ("grant.spent", "email", "spent"),
        ("action.performed", "email", "grant"),
    ]
    assert all(e["userId"] == alice.user_id for e in events)
    assert all(e["sessionId"] == alice.session_id for e in events)
    assert all(e["action"] == "org.delete" and e["resource"] == org for e in events)
    assert [e.get("ipAddress") for e in events] == ["127.0.0.1"] * len(events)
    text = repr(events)
    assert code not in text
    assert bad not in text
    assert "wrong horse" not in text


async def test_org_managers_see_the_orgs_events_and_members_do_not(demo: TestBackend) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "member"})
    await alice.mutation("orgs:rename", {"orgId": org, "name": "Acme Corp"})
    events = await alice.query("audit:list", {"orgId": org})
    assert [(e["event"], e["action"]) for e in events] == [("action.performed", "org.rename")]
    with pytest.raises(ConvexError) as info:
        await bob.query("audit:list", {"orgId": org})
    assert info.value.code == "FORBIDDEN"
    assert await bob.query("audit:list", {}) == []


async def test_no_function_can_reach_the_audit_table(demo: TestBackend) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    await alice.mutation("orgs:rename", {"orgId": org, "name": "Acme 2"})
    (event,) = await alice.query("audit:list", {})
    with pytest.raises(ConvexError) as info:  # an app function's db refuses system ids
        await alice.mutation("orgs:rename", {"orgId": event["_id"], "name": "x"})
    assert info.value.code in ("NOT_FOUND", "INVALID_ARGUMENT")
    still = await alice.query("audit:list", {})
    assert still == [event]
