from typing import Any, Literal

from backend import MutationCtx, QueryCtx, mutation, query


@mutation
async def add(
    ctx: MutationCtx, author: str, body: str, priority: Literal["low", "high"] = "low"
) -> str:
    return await ctx.db.insert("notes", {"author": author, "body": body, "priority": priority})


@query
async def by_author(ctx: QueryCtx, author: str, limit: int = 10) -> list[dict[str, Any]]:
    return await ctx.db.query("notes").with_index("by_author", author=author).take(limit)


@query
async def page(ctx: QueryCtx, paginationOpts: dict[str, Any]) -> dict[str, Any]:
    return await ctx.db.query("notes").paginate(paginationOpts)


@query
async def whoami(ctx: QueryCtx) -> str | None:
    identity = await ctx.auth.get_user_identity()
    return identity.subject if identity else None


@query
async def peek_system(ctx: QueryCtx) -> Any:
    return await ctx.db.query("_scheduled_functions").collect()


@mutation
async def big(ctx: MutationCtx, size: int) -> str:
    return await ctx.db.insert("notes", {"author": "big", "body": "x" * size})


@query
async def now(ctx: QueryCtx) -> float:
    return ctx.now_ms
