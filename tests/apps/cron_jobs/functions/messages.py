from typing import Any

from backend import MutationCtx, QueryCtx, internal_mutation, mutation, query

Documents = list[dict[str, Any]]


@query
async def list(ctx: QueryCtx) -> Documents:
    return await ctx.db.query("messages").collect()


@mutation
async def send(ctx: MutationCtx, body: str, author: str) -> None:
    await ctx.db.insert("messages", {"body": body, "author": author})


@internal_mutation
async def clearAll(ctx: MutationCtx) -> None:
    for message in await ctx.db.query("messages").collect():
        await ctx.db.delete(message["_id"])
