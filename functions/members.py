"""Members of an organization: list, add, change role (member.role, level 2), remove
(member.remove, level 3). The resource of the protected actions is the membership.

**Adding by email tells nobody whether the email has an account.** ``members:add`` answers
a known and an unknown email alike (``null``, after the same reads and one insert each): a
known one becomes a member at once; an unknown one gets an invitation (``invitations``), which
becomes a membership when someone signs in with that email *proven* (a magic link, a verified
OAuth email, email verification) and calls ``invitations:accept`` (the demo page does on
sign-in). Adding an email twice is ``ALREADY_MEMBER`` either way. Each caller may add a few
dozen emails an hour (``LIMITS``), spent before the lookup.

What remains: a known user appears in ``members:list`` at once, because the product promises
that adding someone makes them a member (the demo relies on it). So an admin can still learn,
one rate-limited ``members:add`` at a time, that an address has an account; enumerating many
takes hours per caller rather than seconds.
"""

import builtins
from datetime import timedelta
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email

from backend import (
    ConvexError,
    ErrorCode,
    MutationCtx,
    QueryCtx,
    RateLimiter,
    TokenBucket,
    find_by_email,
    get_profile,
    mutation,
    query,
    require_sensitive_action,
)
from functions.permissions import MANAGERS, check_may_change, membership, org_for, owners

Role = Literal["owner", "admin", "member"]
INVITATION_TTL = timedelta(days=30)
LIMITS = RateLimiter({"members.add": TokenBucket(30, timedelta(hours=1))})


@query
async def list(ctx: QueryCtx, orgId: str) -> builtins.list[dict[str, Any]]:
    """``[{userId, email, name, role}]`` of an organization I belong to."""
    await org_for(ctx, orgId)
    rows = []
    async for row in ctx.db.query("memberships").with_index("by_org", orgId=orgId):
        profile = await get_profile(ctx, row["userId"])
        rows.append(
            {
                "userId": row["userId"],
                "email": profile["email"] if profile else "",
                "name": profile["name"] if profile else "(deleted account)",
                "role": row["role"],
            }
        )
    order = {"owner": 0, "admin": 1, "member": 2}
    return sorted(rows, key=lambda r: (order[r["role"]], r["email"]))


def _may_grant(my_role: str, role: str) -> None:
    if role == "owner" and my_role != "owner":
        raise ConvexError(ErrorCode.FORBIDDEN, "Only an owner can make someone an owner")


def normalised_email(email: str) -> str:
    """The address as sign-up stores it (so that an invitation meets its account), or
    ``INVALID_ARGUMENT``."""
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT, "Enter a valid email address", path="email"
        ) from None
    return checked.normalized.lower()


async def invitation(ctx: QueryCtx, org_id: str, email: str) -> dict[str, Any] | None:
    return await ctx.db.query("invitations").with_index("by_org", orgId=org_id, email=email).first()


@mutation
async def add(ctx: MutationCtx, orgId: str, email: str, role: Role) -> None:
    """Add someone by email (owners and admins): a member at once if the email has an
    account, else invited until it signs up. The answer is the same either way (see above);
    ``ALREADY_MEMBER`` for an email already a member or already invited, ``RATE_LIMITED``
    past the caller's hourly budget."""
    _org, mine = await org_for(ctx, orgId, roles=MANAGERS)
    _may_grant(mine["role"], role)
    if len(email) > 254:
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "Enter a valid email address", path="email")
    await LIMITS.limit(ctx, "members.add", key=mine["userId"])
    address = normalised_email(email)
    profile = await find_by_email(ctx, address)
    pending = await invitation(ctx, orgId, address)
    if profile is not None:
        if pending is not None or await membership(ctx, orgId, profile["id"]) is not None:
            raise ConvexError("ALREADY_MEMBER", "This email is already a member or invited")
        await ctx.db.insert("memberships", {"orgId": orgId, "userId": profile["id"], "role": role})
        return
    if pending is not None:
        raise ConvexError("ALREADY_MEMBER", "This email is already a member or invited")
    # The same reads as a known email takes (this one finds nothing), so that the answer
    # takes the same time too (BENCHMARKS.md).
    await membership(ctx, orgId, address)
    await ctx.db.insert(
        "invitations",
        {
            "orgId": orgId,
            "email": address,
            "role": role,
            "invitedBy": mine["userId"],
            "expiresAt": ctx.now_ms + INVITATION_TTL.total_seconds() * 1000,
        },
    )


async def _target(ctx: QueryCtx, org_id: str, user_id: str, my_role: str) -> dict[str, Any]:
    row = await membership(ctx, org_id, user_id)
    if row is None:
        raise ConvexError(ErrorCode.NOT_FOUND, "No such member")
    check_may_change(my_role, row)
    return row


async def _keep_an_owner(ctx: QueryCtx, org_id: str, row: dict[str, Any]) -> None:
    if row["role"] == "owner" and len(await owners(ctx, org_id)) == 1:
        raise ConvexError("LAST_OWNER", "An organization needs an owner: add another one first")


@mutation
async def setRole(ctx: MutationCtx, orgId: str, userId: str, role: Role) -> None:
    """Change a member's role (owners and admins; level 2)."""
    _org, mine = await org_for(ctx, orgId, roles=MANAGERS)
    _may_grant(mine["role"], role)
    row = await _target(ctx, orgId, userId, mine["role"])
    if row["role"] == role:
        return
    if role != "owner":
        await _keep_an_owner(ctx, orgId, row)
    await require_sensitive_action(ctx, "member.role", resource=row["_id"], scope=orgId)
    await ctx.db.patch(row["_id"], {"role": role})


@mutation
async def remove(ctx: MutationCtx, orgId: str, userId: str) -> None:
    """Remove a member (owners and admins; level 3: a grant)."""
    _org, mine = await org_for(ctx, orgId, roles=MANAGERS)
    row = await _target(ctx, orgId, userId, mine["role"])
    await _keep_an_owner(ctx, orgId, row)
    await require_sensitive_action(ctx, "member.remove", resource=row["_id"], scope=orgId)
    await ctx.db.delete(row["_id"])
