"""Verification for a resource the caller may not act on: FORBIDDEN, before anything is sent,
described or minted, whichever verification function is asked (the password check runs
through its own runner and is covered too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.test_levels import verify_by_password
from tests.support.live_server import LiveServer, live_server


async def forbidden(call: Any) -> dict[str, Any]:
    with pytest.raises(ConvexError) as info:
        await call
    assert info.value.code == "FORBIDDEN", info.value.data
    return dict(info.value.data)


async def every_verification(user: UserHandle, action: str, resource: str | None) -> None:
    """All four verification functions refuse ``user`` for ``action`` on ``resource``."""
    target = {"action": action, "resource": resource}
    for data in (
        await forbidden(user.mutation("sensitive:sendEmailCode", target)),
        await forbidden(user.mutation("sensitive:verifyEmailCode", {**target, "code": "123456"})),
        await forbidden(
            user.mutation("sensitive:verifyPassword", {**target, "password": PASSWORD})
        ),
        await forbidden(user.query("sensitive:status", target)),
    ):
        assert "description" not in data


async def left_behind(t: TestBackend, user: UserHandle) -> dict[str, list[dict[str, Any]]]:
    async def read(ctx: Any) -> dict[str, list[dict[str, Any]]]:
        return {
            table: [
                row
                async for row in ctx.db.query(table)
                if row.get("userId") == user.user_id or row.get("to") == user.email
            ]
            for table in ("_outbox", "_email_codes", "_sensitive_grants")
        }

    return await t.run(read)


async def test_a_removed_admin_gets_forbidden_and_no_mail_for_org_rename(
    demo: TestBackend,
) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "admin"})
    (row,) = [m for m in await alice.query("members:list", {"orgId": org}) if m["role"] == "admin"]
    membership = await demo.run(
        lambda ctx: (
            ctx.db.query("memberships")
            .with_index("by_org", orgId=org, userId=row["userId"])
            .unique()
        )
    )
    assert membership is not None
    await verify_by_password(alice, "member.remove", membership["_id"])
    await alice.mutation("members:remove", {"orgId": org, "userId": bob.user_id})
    await alice.mutation("orgs:rename", {"orgId": org, "name": "Acme Secret Project"})
    mailed_before = len(demo.outbox)
    before = await left_behind(demo, bob)  # bob's sign-up mailed him a confirmation link

    await every_verification(bob, "org.rename", org)

    assert len(demo.outbox) == mailed_before
    assert all("Secret Project" not in m.text for m in demo.outbox if m.to == bob.email)
    assert before["_email_codes"] == before["_sensitive_grants"] == []
    assert await left_behind(demo, bob) == before
    trail = await bob.query("audit:list", {})
    assert [e["outcome"] for e in trail if e["event"] == "verification.failed"] == ["forbidden"] * 3


async def test_each_action_applies_its_mutations_permission_rule(demo: TestBackend) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    bob = await demo.sign_up("bob@example.com", PASSWORD)
    carol = await demo.sign_up("carol@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    await alice.mutation("members:add", {"orgId": org, "email": bob.email, "role": "admin"})

    async def membership_of(user: UserHandle) -> str:
        row = await demo.run(
            lambda ctx: (
                ctx.db.query("memberships")
                .with_index("by_org", orgId=org, userId=user.user_id)
                .unique()
            )
        )
        assert row is not None
        return str(row["_id"])

    owner_row, admin_row = await membership_of(alice), await membership_of(bob)
    await every_verification(bob, "org.delete", org)  # admins may rename, not delete
    await every_verification(bob, "member.role", owner_row)  # an owner's role: owners only
    await every_verification(bob, "member.remove", owner_row)
    await every_verification(carol, "org.rename", org)  # an outsider
    await every_verification(carol, "member.remove", admin_row)
    await every_verification(carol, "org.rename", "not-an-id")  # alike: nothing to learn
    await every_verification(alice, "account.delete", org)  # no resource to name
    await every_verification(alice, "no.such.action", None)  # undeclared: never verified

    # Whoever may act still verifies as before.
    assert (
        await bob.mutation("sensitive:sendEmailCode", {"action": "org.rename", "resource": org})
    )["ok"]
    status = await alice.query("sensitive:status", {"action": "member.role", "resource": admin_row})
    assert status["level"] == 2
    await verify_by_password(alice, "org.delete", org)
    await verify_by_password(alice, "account.delete", None)


# ---- over real HTTP, as the attack came --------------------------------------------------------


@pytest.fixture
async def demo_server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(
        database_url, schema_module="schema", functions_package="functions"
    ) as live:
        yield live


async def _signed_up(http: httpx.AsyncClient, email: str) -> str:
    """A Convex token for a new account (the session cookie stays with this client)."""
    answer = await http.post(
        "/api/auth/sign-up/email", json={"email": email, "password": PASSWORD, "name": email}
    )
    assert answer.status_code == 200, answer.text
    session = answer.json()["token"]
    token = await http.get("/api/auth/convex/token", headers={"authorization": f"Bearer {session}"})
    return str(token.json()["token"])


async def _mail_settled(server: LiveServer) -> None:
    """Until no mail waits in the outbox: the server's scheduler delivers in the background,
    and a delivery in flight would change the outbox under a test that compares it."""

    async def queued(db: Any) -> bool:
        return bool(await db.query("_outbox").with_index("by_state", state="queued").first())

    for _ in range(1000):
        if not await server.engine.system_read(queued):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("mail stayed queued for ten seconds")


async def test_a_removed_admin_gets_forbidden_over_http(demo_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=demo_server.url, timeout=30) as http:
        alice, bob = (
            await _signed_up(http, "alice@example.com"),
            await _signed_up(http, "bob@example.com"),
        )

        async def call(kind: str, token: str, path: str, args: dict[str, Any]) -> Any:
            answer = await http.post(
                f"/api/{kind}",
                json={"path": path, "args": args, "format": "json"},
                headers={"authorization": f"Bearer {token}"},
            )
            assert answer.status_code in (200, 560), answer.text
            return answer.json()

        created = await call("mutation", alice, "orgs:create", {"name": "Acme"})
        org = created["value"]
        # Bob is an admin, then is removed (a plain delete stands in for the step-up dance).
        await call(
            "mutation",
            alice,
            "members:add",
            {"orgId": org, "email": "bob@example.com", "role": "admin"},
        )

        async def remove_bob(db: Any) -> None:
            async for row in db.query("memberships").with_index("by_org", orgId=org):
                if row["role"] == "admin":
                    await db.delete(row["_id"])

        await demo_server.engine.system_write(remove_bob)
        await _mail_settled(demo_server)  # the sign-ups' confirmations are on their way
        before = len(demo_server.mail.sent)

        async def bobs_mail(db: Any) -> list[Any]:
            return [m async for m in db.query("_outbox") if m["to"] == "bob@example.com"]

        mailed = await demo_server.engine.system_read(bobs_mail)  # his sign-up confirmation
        refused = await call(
            "mutation", bob, "sensitive:sendEmailCode", {"action": "org.rename", "resource": org}
        )
        assert refused["status"] == "error"
        assert refused["errorData"]["code"] == "FORBIDDEN"
        assert [m["subject"] for m in mailed] == ["Confirm your email address"]
        assert await demo_server.engine.system_read(bobs_mail) == mailed
        assert len(demo_server.mail.sent) == before
