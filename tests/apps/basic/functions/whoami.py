"""Functions that report who ``ctx.auth`` says is calling, from each kind of function."""

from typing import Any

from backend import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    action,
    internal_action,
    internal_mutation,
    mutation,
    query,
)

# What scheduled jobs saw, in the order they ran: the subject, or None for nobody.
seen_by_jobs: list[str | None] = []


async def _subject(ctx: QueryCtx | ActionCtx) -> str | None:
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else identity.subject


@query
async def in_query(ctx: QueryCtx) -> str | None:
    return await _subject(ctx)


@mutation
async def in_mutation(ctx: MutationCtx) -> str | None:
    return await _subject(ctx)


@action
async def in_action(ctx: ActionCtx) -> dict[str, Any]:
    """What the action itself sees, and what the query and mutation it runs see."""
    return {
        "action": await _subject(ctx),
        "query": await ctx.run_query(in_query),
        "mutation": await ctx.run_mutation(in_mutation),
    }


@internal_action
async def job_action(ctx: ActionCtx) -> None:
    seen_by_jobs.append(await _subject(ctx))


@internal_mutation
async def job_mutation(ctx: MutationCtx) -> None:
    seen_by_jobs.append(await _subject(ctx))


@mutation
async def schedule_both(ctx: MutationCtx, seconds: float) -> None:
    await ctx.scheduler.run_after(seconds, job_action, {})
    await ctx.scheduler.run_after(seconds, job_mutation, {})


@query
async def identity(ctx: QueryCtx) -> dict[str, Any] | None:
    """Convex's ``UserIdentity`` object, as ``ctx.auth.getUserIdentity()`` returns it."""
    found = await ctx.auth.get_user_identity()
    return None if found is None else dict(found)
