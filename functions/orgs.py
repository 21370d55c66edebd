"""Organizations: create one, list mine."""

import builtins
from typing import Any

from backend import ConvexError, MutationCtx, QueryCtx, mutation, query


@query
async def list(ctx: QueryCtx) -> builtins.list[dict[str, Any]]:
    """The organizations I belong to, with my role: ``[{_id, name, role}]``."""
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
    return rows


@mutation
async def create(ctx: MutationCtx, name: str) -> str:
    """Create an organization owned by me; returns its id."""
    identity = await ctx.auth.require_identity()
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ConvexError("INVALID_ARGUMENT", "A name has 1 to 100 characters", path="name")
    org_id = await ctx.db.insert("orgs", {"name": name, "createdBy": identity.subject})
    await ctx.db.insert(
        "memberships", {"orgId": org_id, "userId": identity.subject, "role": "owner"}
    )
    return org_id
