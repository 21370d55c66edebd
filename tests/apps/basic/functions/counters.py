from typing import Any

from backend import ConvexError, MutationCtx, QueryCtx, internal_mutation, mutation, query


@mutation
async def create(ctx: MutationCtx, name: str) -> str:
    return await ctx.db.insert("counters", {"name": name, "value": 0})


@mutation
async def increment(ctx: MutationCtx, name: str) -> int:
    counter = await ctx.db.query("counters").with_index("by_name", name=name).unique()
    if counter is None:
        raise ConvexError("NOT_FOUND", f"no counter {name}")
    value = counter["value"] + 1
    await ctx.db.patch(counter["_id"], {"value": value})
    return int(value)


@query
async def get(ctx: QueryCtx, name: str) -> dict[str, Any] | None:
    return (
        await ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    )


@mutation
async def increment_then_fail(ctx: MutationCtx, name: str) -> None:
    await increment(ctx, name)
    await ctx.db.insert("counters", {"name": name + "-extra", "value": 1})
    raise ConvexError("BOOM", "failed on purpose", detail=[1, 2])


@mutation
async def crash(ctx: MutationCtx) -> None:
    await ctx.db.insert("counters", {"name": "crash", "value": 1})
    raise ZeroDivisionError("oops")


@internal_mutation
async def bump(ctx: MutationCtx, name: str) -> int:
    return await increment(ctx, name)


@mutation
async def schedule_bump(ctx: MutationCtx, name: str, seconds: float) -> str:
    return await ctx.scheduler.run_after(seconds, bump, {"name": name})


@mutation
async def fail_with_text(ctx: MutationCtx, text: str) -> None:
    """Fails with a ConvexError whose data is a plain string, as ``new ConvexError("...")``."""
    raise ConvexError.from_data(text)


@mutation
async def ensure(ctx: MutationCtx, name: str) -> bool:
    """Create the counter unless one of that name exists; True if this call created it (a
    read of an empty range, then an insert into it: the write-skew shape)."""
    found = await ctx.db.query("counters").with_index("by_name", name=name).first()
    if found is not None:
        return False
    await ctx.db.insert("counters", {"name": name, "value": 0})
    return True


@query
async def named(ctx: QueryCtx, name: str) -> int:
    return len(await ctx.db.query("counters").with_index("by_name", name=name).collect())
