from datetime import timedelta
from typing import Any

from backend import ConvexError, MutationCtx, QueryCtx, mutation, query
from backend.ratelimit.limiter import FixedWindow, RateLimiter, TokenBucket

limiter = RateLimiter(
    {
        "send": TokenBucket(2, timedelta(minutes=1)),
        "daily": FixedWindow(3, timedelta(days=1)),
    }
)


@mutation
async def send(ctx: MutationCtx, key: str, count: int = 1) -> str:
    await limiter.limit(ctx, "send", key=key, count=count)
    return await ctx.db.insert("counters", {"name": key, "value": count})


@mutation
async def try_send(ctx: MutationCtx, key: str) -> dict[str, Any]:
    result = await limiter.limit(ctx, "send", key=key, throws=False)
    return {"ok": result.ok, "retryAfterMs": result.retry_after_ms}


@mutation
async def send_then_fail(ctx: MutationCtx, key: str) -> None:
    await limiter.limit(ctx, "send", key=key)
    raise ConvexError("NOPE", "rolled back")


@query
async def can_send(ctx: QueryCtx, key: str) -> bool:
    return (await limiter.check(ctx, "send", key=key, throws=False)).ok


@mutation
async def unknown(ctx: MutationCtx) -> None:
    await limiter.limit(ctx, "nope")


@mutation
async def peek(ctx: MutationCtx) -> list[dict[str, Any]]:
    return await ctx.db.query("_rate_limits").collect()
