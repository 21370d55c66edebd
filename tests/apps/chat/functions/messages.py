from typing import Any

from backend import MutationCtx, QueryCtx, mutation, query


@query
async def list(ctx: QueryCtx, paginationOpts: dict[str, Any]) -> dict[str, Any]:
    return await ctx.db.query("messages").order("desc").paginate(paginationOpts)


@mutation
async def send(ctx: MutationCtx, author: str, body: str) -> str:
    return await ctx.db.insert("messages", {"author": author, "body": body})


@mutation
async def remove(ctx: MutationCtx, id: str) -> None:
    await ctx.db.delete(id)


@query
async def latest(ctx: QueryCtx) -> str | None:
    """The newest message; a message marked "private:" only as far as the caller is told."""
    newest = await ctx.db.query("messages").order("desc").first()
    if newest is None or not newest["body"].startswith("private:"):
        return newest["body"] if newest else None
    identity = await ctx.auth.get_user_identity()
    return f"private, for {identity.subject if identity else 'nobody'}"
