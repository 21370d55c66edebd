"""Test-only functions beside the demo's: every way app code may (or may not) reach a system
table."""

import asyncio
from typing import Any

from backend import (
    ActionCtx,
    ConvexError,
    MutationCtx,
    QueryCtx,
    internal_action,
    mutation,
    query,
)

gate: asyncio.Event | None = None


@query
async def get(ctx: QueryCtx, id: str) -> Any:
    return await ctx.db.system.get(id)


@query
async def get_in(ctx: QueryCtx, table: str, id: str) -> Any:
    return await ctx.db.system.get(table, id)


@query
async def read(ctx: QueryCtx, table: str) -> Any:
    return await ctx.db.system.query(table).collect()


@query
async def read_directly(ctx: QueryCtx, table: str) -> Any:
    return await ctx.db.query(table).collect()


@query
async def get_directly(ctx: QueryCtx, id: str) -> Any:
    return await ctx.db.get(id)


@query
async def by_kind(ctx: QueryCtx, kind: str) -> Any:
    jobs = ctx.db.system.query("_scheduled_functions").order("desc")
    return await jobs.filter(lambda job: job["state"]["kind"] == kind).collect()


@query
async def page(ctx: QueryCtx, paginationOpts: dict[str, Any]) -> Any:
    jobs = ctx.db.system.query("_scheduled_functions").with_index("by_creation_time")
    return await jobs.paginate(paginationOpts)


@query
async def by_engine_index(ctx: QueryCtx) -> Any:
    return await ctx.db.system.query("_scheduled_functions").with_index("by_state").collect()


@mutation
async def cancel(ctx: MutationCtx, id: str) -> None:
    await ctx.scheduler.cancel(id)


@mutation
async def fails(ctx: MutationCtx) -> None:
    raise ConvexError("BROKEN", "this always fails")


@mutation
async def schedule(ctx: MutationCtx, what: str) -> str:
    job_id: str = await ctx.scheduler.run_after(0, fails if what == "fails" else waits, {})
    return job_id


@internal_action
async def waits(ctx: ActionCtx) -> None:
    if gate is not None:
        await gate.wait()
