from typing import Any

from backend import ConvexError, MutationCtx, QueryCtx, mutation, query


@query
async def me(ctx: QueryCtx) -> dict[str, Any] | None:
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else dict(identity)


@mutation
async def add(ctx: MutationCtx, body: str) -> str:
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        raise ConvexError("UNAUTHENTICATED", "sign in first")
    return await ctx.db.insert("notes", {"owner": identity.token_identifier, "body": body})


@query
async def mine(ctx: QueryCtx) -> list[str]:
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        return []
    rows = (
        await ctx.db.query("notes")
        .with_index("by_owner", owner=identity.token_identifier)
        .collect()
    )
    return [row["body"] for row in rows]
