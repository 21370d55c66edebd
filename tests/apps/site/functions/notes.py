from typing import Any

from backend import MutationCtx, QueryCtx, mutation, query

Documents = list[dict[str, Any]]


@mutation
async def add(ctx: MutationCtx, text: str) -> None:
    await ctx.db.insert("notes", {"text": text})


@query
async def list(ctx: QueryCtx) -> Documents:
    return await ctx.db.query("notes").collect()
