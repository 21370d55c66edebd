from typing import Annotated, Any

from backend import Id, MutationCtx, QueryCtx, mutation, query


@mutation
async def cancelMessage(
    ctx: MutationCtx, jobId: Annotated[str, Id("_scheduled_functions")]
) -> None:
    await ctx.scheduler.cancel(jobId)


@query
async def listScheduledSends(ctx: QueryCtx) -> list[dict[str, Any]]:
    return await ctx.db.system.query("_scheduled_functions").collect()
