"""The demo app's protected actions, declared once (see the contract's table, section 4).

Each declares who may verify for it: the permission rule of the mutation that requires it
(``functions/permissions.py``), so that a step-up code is never mailed, a description never
shown and a grant never minted for a resource the caller may not act on.
"""

from backend import QueryCtx, SensitiveAction, SensitiveActions, get_profile, is_id_of
from functions.permissions import MANAGERS, managed_membership, org_for


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


async def may_manage_org(ctx: QueryCtx, org_id: str | None) -> None:
    """``orgs:rename``'s rule: an owner or admin of the organization."""
    await org_for(ctx, org_id or "", roles=MANAGERS)


async def may_delete_org(ctx: QueryCtx, org_id: str | None) -> None:
    """``orgs:remove``'s rule: an owner of the organization."""
    await org_for(ctx, org_id or "", roles=("owner",))


async def may_change_member(ctx: QueryCtx, membership_id: str | None) -> None:
    """``members:setRole`` and ``members:remove``: an owner or admin of the membership's
    organization, and an owner when the membership is an owner's."""
    await managed_membership(ctx, membership_id)


def own_account(_ctx: QueryCtx, resource: str | None) -> bool:
    """``account:remove`` acts on the caller's own account, and names no resource."""
    return resource is None


sensitive_actions = SensitiveActions(
    SensitiveAction(
        "account.delete", 4, "Delete your account. This cannot be undone.", authorize=own_account
    ),
    SensitiveAction("org.rename", 1, describe_rename, authorize=may_manage_org),
    SensitiveAction("org.delete", 4, describe_delete, authorize=may_delete_org),
    SensitiveAction("member.role", 2, describe_role, authorize=may_change_member),
    SensitiveAction("member.remove", 3, describe_removal, authorize=may_change_member),
)
