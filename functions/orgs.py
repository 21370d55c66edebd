"""Organizations: list mine, create, rename (org.rename, level 1), delete (org.delete, level 4)."""

import builtins
from typing import Any

from backend import (
    ConvexError,
    ErrorCode,
    MutationCtx,
    QueryCtx,
    mutation,
    query,
    require_sensitive_action,
)
from functions.permissions import MANAGERS, org_for, signed_in


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 100:
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "A name has 1 to 100 characters", path="name")
    return name


@query
async def list(ctx: QueryCtx) -> builtins.list[dict[str, Any]]:
    """The organizations I belong to, with my role: ``[{_id, name, role}]``, by name."""
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        return []
    rows = []
    async for membership in ctx.db.query("memberships").with_index(
        "by_user", userId=identity.subject
    ):
        org = await ctx.db.get(membership["orgId"])
        if org is not None:
            rows.append({"_id": org["_id"], "name": org["name"], "role": membership["role"]})
    return sorted(rows, key=lambda row: (row["name"].lower(), row["_id"]))


@mutation
async def create(ctx: MutationCtx, name: str) -> str:
    """Create an organization owned by me; returns its id."""
    user_id = await signed_in(ctx)
    org_id = await ctx.db.insert("orgs", {"name": _clean_name(name), "createdBy": user_id})
    await ctx.db.insert("memberships", {"orgId": org_id, "userId": user_id, "role": "owner"})
    return org_id


@mutation
async def rename(ctx: MutationCtx, orgId: str, name: str) -> None:
    """Rename an organization (owners and admins; level 1: a fresh session or a grant)."""
    await org_for(ctx, orgId, roles=MANAGERS)
    clean = _clean_name(name)
    await require_sensitive_action(ctx, "org.rename", resource=orgId, scope=orgId)
    await ctx.db.patch(orgId, {"name": clean})


@mutation
async def remove(ctx: MutationCtx, orgId: str) -> None:
    """Delete an organization, its memberships and invitations (owners only; level 4: a grant,
    spent)."""
    await org_for(ctx, orgId, roles=("owner",))
    await require_sensitive_action(ctx, "org.delete", resource=orgId, scope=orgId)
    async for membership in ctx.db.query("memberships").with_index("by_org", orgId=orgId):
        await ctx.db.delete(membership["_id"])
    async for invitation in ctx.db.query("invitations").with_index("by_org", orgId=orgId):
        await ctx.db.delete(invitation["_id"])
    await ctx.db.delete(orgId)
