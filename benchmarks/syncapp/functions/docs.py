"""What the sync benchmark subscribes to (one document, the newest few) and how it writes."""

from typing import Any

from backend import ConvexError, ErrorCode, MutationCtx, QueryCtx, mutation, query

FEED_SIZE = 10


@query
async def get(ctx: QueryCtx, id: str) -> dict[str, Any] | None:
    """The document with this id, or None."""
    return await ctx.db.get(id)


@query
async def feed(ctx: QueryCtx) -> list[dict[str, Any]]:
    """The ``FEED_SIZE`` newest documents, newest first."""
    return await ctx.db.query("docs").order("desc").take(FEED_SIZE)


@mutation
async def touch(ctx: MutationCtx, id: str) -> int:
    """Raise the document's counter by one; returns the new value."""
    doc = await ctx.db.get(id)
    if doc is None:
        raise ConvexError(ErrorCode.NOT_FOUND, f"no document {id}")
    n = int(doc["n"]) + 1
    await ctx.db.patch(id, {"n": n})
    return n


@mutation
async def post(ctx: MutationCtx, body: str) -> str:
    """Add a document (it becomes the newest in ``feed``); returns its id."""
    return await ctx.db.insert("docs", {"body": body, "n": 0})
