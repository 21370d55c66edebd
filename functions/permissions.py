"""Who may do what in an organization. Checked before any step-up: a caller who is not
allowed gets FORBIDDEN whatever their verification state."""

from typing import Any

from backend import ConvexError, ErrorCode, QueryCtx, is_id_of

MANAGERS = ("owner", "admin")


async def signed_in(ctx: QueryCtx) -> str:
    """The caller's user id; UNAUTHENTICATED without a live session."""
    return (await ctx.auth.require_identity()).subject


async def membership(ctx: QueryCtx, org_id: str, user_id: str) -> dict[str, Any] | None:
    return await (
        ctx.db.query("memberships").with_index("by_org", orgId=org_id, userId=user_id).unique()
    )


async def org_for(
    ctx: QueryCtx, org_id: str, *, roles: tuple[str, ...] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The org and the caller's membership. NOT_FOUND for an org the caller cannot see (so
    outsiders learn nothing), FORBIDDEN when their role is not one of ``roles``."""
    user_id = await signed_in(ctx)
    org = await ctx.db.get(org_id) if is_id_of(org_id, "orgs") else None
    mine = await membership(ctx, org_id, user_id) if org is not None else None
    if org is None or mine is None:
        raise ConvexError(ErrorCode.NOT_FOUND, "No such organization")
    if roles is not None and mine["role"] not in roles:
        raise ConvexError(ErrorCode.FORBIDDEN, "Your role in this organization does not allow this")
    return org, mine


async def owners(ctx: QueryCtx, org_id: str) -> list[dict[str, Any]]:
    return [
        m
        async for m in ctx.db.query("memberships").with_index("by_org", orgId=org_id)
        if m["role"] == "owner"
    ]


def check_may_change(my_role: str, member: dict[str, Any]) -> None:
    """An owner's membership is changed by owners only."""
    if member["role"] == "owner" and my_role != "owner":
        raise ConvexError(ErrorCode.FORBIDDEN, "Only an owner can change an owner")


async def managed_membership(
    ctx: QueryCtx, membership_id: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The membership ``membership_id`` and the caller's own in its org, when the caller may
    change it (an owner or admin there, and an owner for an owner's membership). NOT_FOUND for
    a membership the caller cannot see, FORBIDDEN otherwise."""
    row = (
        await ctx.db.get(membership_id)
        if membership_id and is_id_of(membership_id, "memberships")
        else None
    )
    if row is None:
        raise ConvexError(ErrorCode.NOT_FOUND, "No such member")
    _org, mine = await org_for(ctx, row["orgId"], roles=MANAGERS)
    check_may_change(mine["role"], row)
    return row, mine
