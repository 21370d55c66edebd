"""My audit trail, or an organization's (for its owners and admins), newest first."""

import builtins
from typing import Any

from backend import QueryCtx, query
from backend.audit import list_events
from functions.permissions import MANAGERS, org_for, signed_in


@query
async def list(ctx: QueryCtx, orgId: str | None = None) -> builtins.list[dict[str, Any]]:
    """Events of mine, or of the org ``orgId`` (FORBIDDEN unless I manage it)."""
    if orgId is None:
        return await list_events(ctx._txn, user_id=await signed_in(ctx), limit=100)
    await org_for(ctx, orgId, roles=MANAGERS)
    return await list_events(ctx._txn, scope=orgId, limit=100)
