import asyncio
from typing import Any

from backend import (
    ActionCtx,
    ConvexError,
    MutationCtx,
    QueryCtx,
    internal_action,
    internal_mutation,
    query,
)

# What the actions did, in this process (the tests look, and may hold an action open).
acted: list[str] = []
gate: asyncio.Event | None = None


@internal_mutation
async def record(ctx: MutationCtx, cron: str) -> None:
    identity = await ctx.auth.get_user_identity()
    who = identity.subject if identity else None
    await ctx.db.insert("ticks", {"cron": cron, "at": ctx.now_ms, "who": who})


@internal_mutation
async def fail(ctx: MutationCtx, cron: str) -> None:
    await ctx.db.insert("ticks", {"cron": cron, "at": ctx.now_ms})
    raise ConvexError("BROKEN", "this cron always fails")


@internal_action
async def act(ctx: ActionCtx, cron: str) -> None:
    if gate is not None:
        await gate.wait()
    acted.append(cron)
    await ctx.run_mutation(record, {"cron": cron})


@query
async def list(ctx: QueryCtx, cron: str | None = None) -> Any:
    if cron is None:
        return await ctx.db.query("ticks").collect()
    return await ctx.db.query("ticks").with_index("by_cron", cron=cron).collect()
