"""The demo app's protected actions, declared once (see the contract's table, section 4)."""

from backend import QueryCtx
from backend.auth.users import get_profile
from backend.sensitive import SensitiveAction, SensitiveActions
from backend.values.ids import is_id_of


async def _org_name(ctx: QueryCtx, org_id: str | None) -> str:
    org = await ctx.db.get(org_id) if org_id and is_id_of(org_id, "orgs") else None
    return f'"{org["name"]}"' if org else "this organization"


async def _member(ctx: QueryCtx, membership_id: str | None) -> tuple[str, str]:
    row = (
        await ctx.db.get(membership_id)
        if membership_id and is_id_of(membership_id, "memberships")
        else None
    )
    if row is None:
        return "this member", "this organization"
    profile = await get_profile(ctx, row["userId"])
    who = profile["email"] if profile else "this member"
    return who, await _org_name(ctx, row["orgId"])


async def describe_delete(ctx: QueryCtx, org_id: str | None) -> str:
    return f"Delete organization {await _org_name(ctx, org_id)} and all its memberships"


async def describe_rename(ctx: QueryCtx, org_id: str | None) -> str:
    return f"Rename organization {await _org_name(ctx, org_id)}"


async def describe_role(ctx: QueryCtx, membership_id: str | None) -> str:
    who, org = await _member(ctx, membership_id)
    return f"Change the role of {who} in {org}"


async def describe_removal(ctx: QueryCtx, membership_id: str | None) -> str:
    who, org = await _member(ctx, membership_id)
    return f"Remove {who} from {org}"


sensitive_actions = SensitiveActions(
    SensitiveAction("account.delete", 4, "Delete your account. This cannot be undone."),
    SensitiveAction("org.rename", 1, describe_rename),
    SensitiveAction("org.delete", 4, describe_delete),
    SensitiveAction("member.role", 2, describe_role),
    SensitiveAction("member.remove", 3, describe_removal),
)
