"""Members of an organization: list, add, change role (member.role, level 2), remove
(member.remove, level 3). The resource of the protected actions is the membership."""

import builtins
from typing import Any, Literal

from backend import ConvexError, MutationCtx, QueryCtx, mutation, query
from backend.auth.users import find_by_email, get_profile
from backend.sensitive import require_sensitive_action
from functions.permissions import MANAGERS, check_may_change, membership, org_for, owners

Role = Literal["owner", "admin", "member"]


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
        raise ConvexError("FORBIDDEN", "Only an owner can make someone an owner")


@mutation
async def add(ctx: MutationCtx, orgId: str, email: str, role: Role) -> str:
    """Add a user by email (owners and admins). NOT_FOUND when no account has that email:
    they must sign up first (an invitation flow would hide that; see README)."""
    _org, mine = await org_for(ctx, orgId, roles=MANAGERS)
    _may_grant(mine["role"], role)
    profile = await find_by_email(ctx, email)
    if profile is None:
        raise ConvexError("NOT_FOUND", "No account uses this email yet", path="email")
    if await membership(ctx, orgId, profile["id"]) is not None:
        raise ConvexError("ALREADY_MEMBER", "This user is already a member")
    return await ctx.db.insert(
        "memberships", {"orgId": orgId, "userId": profile["id"], "role": role}
    )


async def _target(ctx: QueryCtx, org_id: str, user_id: str, my_role: str) -> dict[str, Any]:
    row = await membership(ctx, org_id, user_id)
    if row is None:
        raise ConvexError("NOT_FOUND", "No such member")
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
