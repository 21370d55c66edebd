"""My audit trail, or an organization's (for its owners and admins), newest first."""

import builtins
from typing import Any

from backend import QueryCtx, list_events, query
from functions.permissions import MANAGERS, org_for, signed_in


@query
async def list(ctx: QueryCtx, orgId: str | None = None) -> builtins.list[dict[str, Any]]:
    """Events of mine, or of the org ``orgId`` (FORBIDDEN unless I manage it)."""
    if orgId is None:
        return await list_events(ctx, user_id=await signed_in(ctx), limit=100)
    await org_for(ctx, orgId, roles=MANAGERS)
    return await list_events(ctx, scope=orgId, limit=100)
