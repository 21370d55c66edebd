"""Functions whose declared return types are checked (``test_returns.py``)."""

from typing import Annotated, Any

from pydantic import BaseModel

from backend import ActionCtx, Id, MutationCtx, QueryCtx, action, mutation, query


class PublicCounter(BaseModel):
    name: str
    value: int


class Page(BaseModel):
    counters: list[PublicCounter]
    total: int


@mutation
async def create_counted(ctx: MutationCtx, name: str, claim: str) -> int:
    """Writes, then returns what ``claim`` says: an int, or a string that is not one."""
    await ctx.db.insert("counters", {"name": name, "value": 0})
    return 1 if claim == "int" else "one"  # type: ignore[return-value]


@mutation(returns=Annotated[str, Id("counters")])
async def create_declared(ctx: MutationCtx, name: str, wrong_table: bool = False) -> Any:
    counter = await ctx.db.insert("counters", {"name": name, "value": 0})
    if wrong_table:
        return await ctx.db.insert("notes", {"author": "a", "body": name})
    return counter


@query
async def public(ctx: QueryCtx, name: str) -> PublicCounter | None:
    """Declares the public shape, but returns the stored document as it is: its ``_id`` and
    ``_creationTime`` are fields ``PublicCounter`` does not declare."""
    doc: Any = await ctx.db.query("counters").with_index("by_name", name=name).unique()
    return doc  # type: ignore[no-any-return]


@query
async def public_shaped(ctx: QueryCtx, name: str) -> PublicCounter | None:
    doc = await ctx.db.query("counters").with_index("by_name", name=name).unique()
    return None if doc is None else PublicCounter(name=doc["name"], value=doc["value"])


@query(returns=Page)
async def page(ctx: QueryCtx, bad_at: int = -1) -> dict[str, Any]:
    rows = await ctx.db.query("counters").collect()
    counters: list[dict[str, Any]] = [{"name": r["name"], "value": r["value"]} for r in rows]
    if 0 <= bad_at < len(counters):
        counters[bad_at]["value"] = "many"
    return {"counters": counters, "total": len(counters)}


@query
async def missing_field(ctx: QueryCtx) -> PublicCounter:
    return {"name": "x"}  # type: ignore[return-value]


@query(returns=None)
async def nothing(ctx: QueryCtx, value: Any = None) -> Any:
    return value


@query
async def anything(ctx: QueryCtx, value: Any = None) -> Any:
    return value


@query
async def unannotated(ctx: QueryCtx, value: Any = None):  # type: ignore[no-untyped-def]
    return value


@query
async def number(ctx: QueryCtx, value: Any) -> float:
    return value  # type: ignore[no-any-return]


@query
async def secret_shape(ctx: QueryCtx) -> dict[str, int]:
    return {"password": "hunter2", "ok": 1}  # type: ignore[dict-item]


@query
async def inner_count(ctx: QueryCtx, claim: str) -> int:
    return 1 if claim == "int" else "one"  # type: ignore[return-value]


@mutation
async def create_then_ask(ctx: MutationCtx, name: str, claim: str) -> int:
    """Writes, then returns what a nested query returns: the nested query's check fails it."""
    await ctx.db.insert("counters", {"name": name, "value": 0})
    value: int = await ctx.run_query("shapes:inner_count", {"claim": claim})
    return value


@action
async def act(ctx: ActionCtx, claim: str) -> list[str]:
    return ["a"] if claim == "list" else "a"  # type: ignore[return-value]
