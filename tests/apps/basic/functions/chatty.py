"""Functions that print and log (``test_logs.py``)."""

import asyncio
import logging
import sys

from backend import ActionCtx, ConvexError, MutationCtx, QueryCtx, action, mutation, query

log = logging.getLogger(__name__)


@query
async def hello(ctx: QueryCtx, name: str) -> str:
    print("hello", name)
    log.info("info %s", name)
    log.debug("debug")
    log.warning("careful")
    print("oops", file=sys.stderr)
    return name


@query
async def interleaved(ctx: QueryCtx, name: str, n: int) -> int:
    for i in range(n):
        print(f"{name} {i}")
        await asyncio.sleep(0)  # let the other calls run in between
    return n


@query
async def flood(ctx: QueryCtx, n: int, size: int = 1) -> int:
    for i in range(n):
        print(str(i) * size)
    return n


@mutation
async def write(ctx: MutationCtx, name: str, fail: bool = False) -> str:
    print("writing", name)
    counter = await ctx.db.insert("counters", {"name": name, "value": 0})
    if fail:
        log.error("refusing %s", name)
        raise ConvexError("REFUSED", "no")
    return counter


@mutation
async def bump(ctx: MutationCtx, name: str) -> int:
    counter = await ctx.db.query("counters").with_index("by_name", name=name).unique()
    assert counter is not None
    print("bump from", counter["value"])
    await ctx.db.patch(counter["_id"], {"value": counter["value"] + 1})
    return int(counter["value"]) + 1


@action
async def act(ctx: ActionCtx, name: str) -> str:
    print("acting")
    value: str = await ctx.run_query("chatty:hello", {"name": name})
    try:
        raise ValueError("caught")
    except ValueError:
        log.exception("handled")
    return value


@query
async def crash(ctx: QueryCtx) -> None:
    print("about to fail")
    raise RuntimeError("bug")
