"""My account: who am I, and deleting it (account.delete, level 4).

Deleting an account removes its memberships and revokes every session. Organizations where I
am the only member go with it. An organization I own alone but that has other members is
*refused* (``SOLE_OWNER``, naming the organizations): make someone else an owner first. We
refuse rather than hand it over, because picking an heir silently is not ours to decide.
"""

from typing import Any

from backend import (
    ConvexError,
    MutationCtx,
    QueryCtx,
    delete_account,
    get_profile,
    has_password,
    mutation,
    query,
    require_sensitive_action,
)
from functions.permissions import owners, signed_in


@query
async def me(ctx: QueryCtx) -> dict[str, Any] | None:
    """My profile (``{id, email, name, emailVerified, image, hasPassword}``), or None."""
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        return None
    profile = await get_profile(ctx, identity.subject)
    if profile is None:
        return None
    return {**profile, "hasPassword": await has_password(ctx, identity.subject)}


@mutation
async def remove(ctx: MutationCtx) -> None:
    """Delete my account. Refused with SOLE_OWNER while I alone own an org with members."""
    user_id = await signed_in(ctx)
    mine = [m async for m in ctx.db.query("memberships").with_index("by_user", userId=user_id)]
    alone: list[str] = []
    blocked: list[dict[str, str]] = []
    for row in mine:
        if row["role"] != "owner":
            continue
        members = [
            m async for m in ctx.db.query("memberships").with_index("by_org", orgId=row["orgId"])
        ]
        if len(members) == 1:
            alone.append(row["orgId"])
        elif len(await owners(ctx, row["orgId"])) == 1:
            org = await ctx.db.get(row["orgId"])
            blocked.append({"orgId": row["orgId"], "name": org["name"] if org else ""})
    if blocked:
        raise ConvexError(
            "SOLE_OWNER",
            "You are the only owner of organizations with other members: "
            "make someone else an owner first",
            orgs=blocked,
        )
    await require_sensitive_action(ctx, "account.delete")
    for row in mine:
        await ctx.db.delete(row["_id"])
    for org_id in alone:
        await ctx.db.delete(org_id)
    await delete_account(ctx, user_id)
