"""What the official clients are driven through: every kind of function, result and failure."""

import builtins
from typing import Any

from backend import ActionCtx, ConvexError, MutationCtx, QueryCtx, action, mutation, query


@query
async def list(ctx: QueryCtx, channel: str) -> builtins.list[str]:
    rows = await ctx.db.query("messages").with_index("by_channel", channel=channel).collect()
    return [row["body"] for row in rows]


@query
async def first(ctx: QueryCtx, channel: str, n: int) -> builtins.list[str]:
    return (await list(ctx, channel))[:n]


@query
async def count(ctx: QueryCtx, channel: str) -> int:
    return len(await ctx.db.query("messages").with_index("by_channel", channel=channel).collect())


@query
async def ping(ctx: QueryCtx) -> str:
    return "pong"


@query
async def refuse(ctx: QueryCtx, channel: str) -> None:
    raise ConvexError("FORBIDDEN", f"not in {channel}", channel=channel, level=3)


@query
async def whoami(ctx: QueryCtx) -> dict[str, Any] | None:
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else dict(identity)


@mutation
async def send(ctx: MutationCtx, channel: str, body: str) -> str:
    return await ctx.db.insert("messages", {"channel": channel, "body": body})


@mutation
async def send_then_refuse(ctx: MutationCtx, channel: str, body: str) -> None:
    await ctx.db.insert("messages", {"channel": channel, "body": body})
    raise ConvexError("SENSITIVE_VERIFICATION_REQUIRED", "verify first", methods=["password"])


@mutation
async def crash(ctx: MutationCtx, channel: str) -> None:
    await ctx.db.insert("messages", {"channel": channel, "body": "never"})
    raise ZeroDivisionError("oops")


@action
async def echo(ctx: ActionCtx, value: Any) -> Any:
    return {"echoed": value, "count": await ctx.run_query(count, {"channel": "a"})}


@action
async def refuse_action(ctx: ActionCtx) -> None:
    raise ConvexError("RATE_LIMITED", "slow down", retryAfterMs=1500)


@mutation
async def send_counted(ctx: MutationCtx, channel: str, body: str) -> int:
    """Declares a count, returns the new message's id: the return check fails the call."""
    message_id: Any = await ctx.db.insert("messages", {"channel": channel, "body": body})
    return message_id  # type: ignore[no-any-return]


@query
async def bodies_claimed_numbers(ctx: QueryCtx, channel: str) -> builtins.list[int]:
    return await list(ctx, channel)  # type: ignore[return-value]


@query
async def list_logged(ctx: QueryCtx, channel: str) -> builtins.list[str]:
    bodies = await list(ctx, channel)
    print("listing", channel, len(bodies))
    return bodies


@mutation
async def send_logged(ctx: MutationCtx, channel: str, body: str) -> str:
    print("sending to", channel)
    return await ctx.db.insert("messages", {"channel": channel, "body": body})


@query
async def greeting(ctx: QueryCtx) -> str:
    return ctx.env.get("GREETING", "hello")
