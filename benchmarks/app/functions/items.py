"""The operations the benchmark times: insert one document, get one by id, read a range."""

from typing import Any

from backend import MutationCtx, QueryCtx, mutation, query

RANGE_SIZE = 100


@mutation
async def insert(ctx: MutationCtx, group: str, n: int, label: str) -> str:
    """Insert one small document; returns its id."""
    return await ctx.db.insert("items", {"group": group, "n": n, "label": label})


@query
async def get(ctx: QueryCtx, id: str) -> dict[str, Any] | None:
    """The document with this id, or None."""
    return await ctx.db.get(id)


@query
async def range(ctx: QueryCtx, group: str) -> list[dict[str, Any]]:
    """The first 100 documents of ``group``, in order of ``n``."""
    return await ctx.db.query("items").with_index("by_group", group=group).take(RANGE_SIZE)


@mutation
async def touch(ctx: MutationCtx, group: str) -> int:
    """Move the first document of ``group`` on by one (its index key changes); the new ``n``.
    The concurrency benchmark's write: distinct groups never meet, one group is a hot spot."""
    found = await ctx.db.query("items").with_index("by_group", group=group).first()
    if found is None:
        await ctx.db.insert("items", {"group": group, "n": 1, "label": "touched"})
        return 1
    await ctx.db.patch(found["_id"], {"n": found["n"] + 1})
    return int(found["n"]) + 1
