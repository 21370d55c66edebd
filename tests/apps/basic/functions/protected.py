"""Protected mutations for tests and benchmarks of step-up verification."""

from backend import MutationCtx, mutation
from backend.sensitive import SensitiveAction, SensitiveActions, require_sensitive_action

sensitive_actions = SensitiveActions(
    SensitiveAction("thing.poke", 4, "Poke {resource}"),
    SensitiveAction("thing.look", 3, "Look at {resource}"),
    SensitiveAction("thing.quick", 2, "Quickly touch {resource}", fresh_for=None),
    SensitiveAction("thing.vault", 3, "Open vault {resource}", methods={"passkey", "totp"}),
)


@mutation
async def poke(ctx: MutationCtx, name: str) -> int:
    """Level 4: each call spends a grant for this counter."""
    await require_sensitive_action(ctx, "thing.poke", resource=name)
    return await _bump(ctx, name)


@mutation
async def look(ctx: MutationCtx, name: str) -> int:
    await require_sensitive_action(ctx, "thing.look", resource=name)
    return await _bump(ctx, name)


@mutation
async def quick(ctx: MutationCtx, name: str) -> int:
    """Level 2: a session signed in within 10 minutes, or a grant."""
    await require_sensitive_action(ctx, "thing.quick", resource=name)
    return await _bump(ctx, name)


@mutation
async def vault(ctx: MutationCtx, name: str) -> int:
    """Level 3, and only a passkey or an authenticator app (or email, for a user without)."""
    await require_sensitive_action(ctx, "thing.vault", resource=name)
    return await _bump(ctx, name)


@mutation
async def unprotected(ctx: MutationCtx, name: str) -> int:
    await ctx.auth.require_identity()
    return await _bump(ctx, name)


@mutation
async def poke_then_fail(ctx: MutationCtx, name: str) -> None:
    await require_sensitive_action(ctx, "thing.poke", resource=name)
    await _bump(ctx, name)
    raise ValueError("failed after the check")


@mutation
async def unregistered(ctx: MutationCtx) -> None:
    await require_sensitive_action(ctx, "thing.unknown")


async def _bump(ctx: MutationCtx, name: str) -> int:
    row = await ctx.db.query("counters").with_index("by_name", name=name).unique()
    if row is None:
        await ctx.db.insert("counters", {"name": name, "value": 1})
        return 1
    await ctx.db.patch(row["_id"], {"value": row["value"] + 1})
    return int(row["value"]) + 1
