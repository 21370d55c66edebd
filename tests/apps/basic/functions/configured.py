"""Functions that read environment variables (``test_environment.py``)."""

import builtins

from backend import ActionCtx, MutationCtx, QueryCtx, action, mutation, query


@query
async def greeting(ctx: QueryCtx) -> str:
    return ctx.env.get("GREETING", "hello")


@query
async def required(ctx: QueryCtx) -> str:
    return ctx.env["API_KEY"]


@query
async def names(ctx: QueryCtx) -> builtins.list[str]:
    return builtins.list(ctx.env)


@mutation
async def stamp(ctx: MutationCtx, name: str) -> str:
    return await ctx.db.insert("counters", {"name": name + ctx.env.get("SUFFIX", ""), "value": 0})


@action
async def act(ctx: ActionCtx) -> str | None:
    return ctx.env.get("GREETING")


@query
async def peek(ctx: QueryCtx, system: bool) -> int:
    """Tries to read the variables' table as app code can: it cannot."""
    if system:
        return len(await ctx.db.system.query("_environment_variables").collect())
    return len(await ctx.db.query("_environment_variables").collect())
