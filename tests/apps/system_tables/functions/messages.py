from typing import Any

from backend import MutationCtx, QueryCtx, mutation, query

Documents = list[dict[str, Any]]


@query
async def list(ctx: QueryCtx) -> Documents:
    return await ctx.db.query("messages").collect()


@mutation
async def sendMessage(ctx: MutationCtx, body: str, author: str) -> None:
    await ctx.db.insert("messages", {"body": body, "author": author, "format": "text"})


@mutation
async def scheduleMessage(ctx: MutationCtx, delay: float, body: str, author: str) -> str:
    job_id: str = await ctx.scheduler.run_after(
        delay, sendMessage, {"body": body, "author": author}
    )
    return job_id
