from typing import Any

from backend import MutationCtx, QueryCtx, mutation, query


@mutation
async def add(ctx: MutationCtx, text: str) -> None:
    await ctx.db.insert("notes", {"text": text})


@query
async def list(ctx: QueryCtx) -> list[dict[str, Any]]:
    return await ctx.db.query("notes").collect()
