"""Scheduled work that schedules more: a chain that ends, and one that never does."""

from backend import MutationCtx, internal_mutation, mutation
from tests.apps.basic.functions.counters import increment


@internal_mutation
async def step(ctx: MutationCtx, name: str, left: int, seconds: float) -> None:
    await increment(ctx, name)
    if left > 1:
        await ctx.scheduler.run_after(
            seconds, step, {"name": name, "left": left - 1, "seconds": seconds}
        )


@mutation
async def start(ctx: MutationCtx, name: str, steps: int, seconds: float) -> None:
    """Bump ``name`` ``steps`` times, one step every ``seconds``, each step scheduling the next."""
    await ctx.db.insert("counters", {"name": name, "value": 0})
    await ctx.scheduler.run_after(seconds, step, {"name": name, "left": steps, "seconds": seconds})


@internal_mutation
async def forever(ctx: MutationCtx, name: str) -> None:
    await increment(ctx, name)
    await ctx.scheduler.run_after(60, forever, {"name": name})


@mutation
async def start_forever(ctx: MutationCtx, name: str) -> None:
    await ctx.db.insert("counters", {"name": name, "value": 0})
    await ctx.scheduler.run_after(60, forever, {"name": name})
