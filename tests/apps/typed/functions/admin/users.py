from backend import MutationCtx, QueryCtx, mutation, query


@mutation
async def ban(ctx: MutationCtx, userId: str, reason: str | None = None) -> None:
    return None


@query
async def count(ctx: QueryCtx) -> int:
    return 0
