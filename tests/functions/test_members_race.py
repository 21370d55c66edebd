"""Write skew refused: racing ``members:add`` of one email leave one membership (each read
the email's absence, and only one of them may act on it)."""

from __future__ import annotations

import asyncio

from backend.errors import ConvexError
from backend.testing import TestBackend
from tests.backend.sensitive.conftest import PASSWORD


async def test_twelve_racing_adds_of_one_email_make_one_membership(demo: TestBackend) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    await demo.sign_up("bob@example.com", PASSWORD)

    async def add() -> str:
        try:
            await alice.mutation(
                "members:add", {"orgId": org, "email": "bob@example.com", "role": "member"}
            )
        except ConvexError as error:
            return str(error.data["code"])
        return "added"

    answers = await asyncio.gather(*(add() for _ in range(12)))
    assert sorted(answers) == ["ALREADY_MEMBER"] * 11 + ["added"]
    members = await alice.query("members:list", {"orgId": org})
    assert sorted(m["email"] for m in members) == ["alice@example.com", "bob@example.com"]


async def test_twelve_racing_invitations_of_one_email_make_one(demo: TestBackend) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})

    async def invite() -> str:
        try:
            await alice.mutation(
                "members:add", {"orgId": org, "email": "carol@example.com", "role": "member"}
            )
        except ConvexError as error:
            return str(error.data["code"])
        return "invited"

    answers = await asyncio.gather(*(invite() for _ in range(12)))
    assert sorted(answers) == ["ALREADY_MEMBER"] * 11 + ["invited"]
    invited = await demo.run(
        lambda ctx: (
            ctx.db.query("invitations")
            .filter(lambda i: i["email"] == "carol@example.com")
            .collect()
        )
    )
    assert len(invited) == 1
