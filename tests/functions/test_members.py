"""``members:add`` as an enumeration oracle: the same answer for known and unknown emails, a
budget per caller, and invitations that only a proven address can claim."""

from __future__ import annotations

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD


async def _org(t: TestBackend, email: str = "alice@example.com") -> tuple[UserHandle, str]:
    owner = await t.sign_up(email, PASSWORD)
    return owner, await owner.mutation("orgs:create", {"name": "Acme"})


async def _add(user: UserHandle, org: str, email: str, role: str = "member") -> object:
    return await user.mutation("members:add", {"orgId": org, "email": email, "role": role})


async def _refusal(user: UserHandle, org: str, email: str) -> dict[str, object]:
    with pytest.raises(ConvexError) as info:
        await _add(user, org, email)
    return dict(info.value.data)


async def test_members_add_answers_a_known_and_an_unknown_email_alike(demo: TestBackend) -> None:
    alice, org = await _org(demo)
    await demo.sign_up("bob@example.com", PASSWORD)
    assert await _add(alice, org, "bob@example.com") is None
    assert await _add(alice, org, "nobody@example.com") is None
    known = await _refusal(alice, org, "Bob@Example.com")
    unknown = await _refusal(alice, org, "nobody@example.com")
    assert (
        known
        == unknown
        == {
            "code": "ALREADY_MEMBER",
            "message": "This email is already a member or invited",
        }
    )
    assert (await _refusal(alice, org, "not an address"))["code"] == "INVALID_ARGUMENT"


@pytest.mark.rate_limits
async def test_probing_emails_through_members_add_is_rate_limited_per_caller(
    demo: TestBackend,
) -> None:
    alice, org = await _org(demo)
    for i in range(30):
        await _add(alice, org, f"probe{i}@example.com")
    refused = await _refusal(alice, org, "probe30@example.com")
    assert refused["code"] == "RATE_LIMITED"
    assert isinstance(refused["retryAfterMs"], int)
    assert 0 < refused["retryAfterMs"] <= 120_000
    # Another caller has a budget of its own; the prober's refills with time.
    carol, elsewhere = await _org(demo, "carol@example.com")
    assert await _add(carol, elsewhere, "probe30@example.com") is None
    demo.clock.advance(minutes=2)
    assert await _add(alice, org, "probe30@example.com") is None


async def test_an_invitation_becomes_a_membership_when_that_email_signs_in(
    demo: TestBackend,
) -> None:
    alice, org = await _org(demo)
    await _add(alice, org, "Newcomer@Example.com", role="admin")
    assert await alice.query("invitations:list", {"orgId": org}) == [
        {
            "email": "newcomer@example.com",
            "role": "admin",
            "expiresAt": pytest.approx(demo.clock.now().timestamp() * 1000 + 30 * 86_400_000),
        }
    ]
    newcomer = await demo.sign_in_magic_link("newcomer@example.com")  # proves the address
    assert await newcomer.mutation("invitations:accept", {}) == [org]
    assert await newcomer.query("orgs:list", {}) == [{"_id": org, "name": "Acme", "role": "admin"}]
    assert await alice.query("invitations:list", {"orgId": org}) == []
    assert await newcomer.mutation("invitations:accept", {}) == []


async def test_an_unproven_sign_up_claims_no_invitation(demo: TestBackend) -> None:
    alice, org = await _org(demo)
    await _add(alice, org, "target@example.com", role="admin")
    squatter = await demo.sign_up("target@example.com", "another good password")
    assert squatter.user["emailVerified"] is False
    assert await squatter.mutation("invitations:accept", {}) == []
    assert await squatter.query("orgs:list", {}) == []


async def test_an_invitation_to_a_deleted_org_is_dropped(demo: TestBackend) -> None:
    alice, org = await _org(demo)
    await _add(alice, org, "late@example.com")

    async def drop(ctx: object) -> None:
        await ctx.db.delete(org)  # type: ignore[attr-defined]

    await demo.run(drop)
    late = await demo.sign_in_magic_link("late@example.com")
    assert await late.mutation("invitations:accept", {}) == []
