"""Invitations: what ``members:add`` leaves for an email that has no account yet.

An invitation becomes a membership when its email's owner, signed in with that address proven
(``emailVerified``: a magic link, a verified OAuth email, email verification), calls
``invitations:accept``; the demo page does so on every sign-in. An address merely typed into a
password sign-up proves nothing, so it claims nothing: otherwise whoever signed up first with
an invited address would walk into the organization.
"""

import builtins
from typing import Any

from backend import MutationCtx, QueryCtx, get_profile, mutation, query
from functions.permissions import MANAGERS, membership, org_for, signed_in


@query
async def list(ctx: QueryCtx, orgId: str) -> builtins.list[dict[str, Any]]:
    """Pending invitations of an organization I manage: ``[{email, role, expiresAt}]``."""
    await org_for(ctx, orgId, roles=MANAGERS)
    rows = [
        {"email": row["email"], "role": row["role"], "expiresAt": row["expiresAt"]}
        async for row in ctx.db.query("invitations").with_index("by_org", orgId=orgId)
        if row["expiresAt"] > ctx.now_ms
    ]
    return sorted(rows, key=lambda r: r["email"])


@mutation
async def accept(ctx: MutationCtx) -> builtins.list[str]:
    """Join every organization that invited my (proven) email; returns their ids."""
    user_id = await signed_in(ctx)
    profile = await get_profile(ctx, user_id)
    if profile is None or not profile["emailVerified"]:
        return []
    joined = []
    async for row in ctx.db.query("invitations").with_index("by_email", email=profile["email"]):
        await ctx.db.delete(row["_id"])
        org = await ctx.db.get(row["orgId"])
        if org is None or row["expiresAt"] <= ctx.now_ms:
            continue
        if await membership(ctx, row["orgId"], user_id) is None:
            await ctx.db.insert(
                "memberships", {"orgId": row["orgId"], "userId": user_id, "role": row["role"]}
            )
            joined.append(row["orgId"])
    return joined
