from typing import Any

from backend import MutationCtx, QueryCtx, migration, mutation, query


@mutation
async def add_many(ctx: MutationCtx, count: int, start: int = 0) -> list[str]:
    return [
        await ctx.db.insert("items", {"name": f"item {i}", "n": i})
        for i in range(start, start + count)
    ]


@mutation
async def add(ctx: MutationCtx, name: str, n: int) -> str:
    return await ctx.db.insert("items", {"name": name, "n": n})


@mutation
async def touch(ctx: MutationCtx, id: str, n: int) -> None:
    await ctx.db.patch(id, {"n": n})


@mutation
async def remove(ctx: MutationCtx, id: str) -> None:
    await ctx.db.delete(id)


@query
async def by_n(ctx: QueryCtx, low: int, high: int) -> list[dict[str, Any]]:
    return await (
        ctx.db.query("items").with_index("by_n", lambda q: q.gte("n", low).lt("n", high)).collect()
    )


@query
async def by_name(ctx: QueryCtx, name: str) -> list[dict[str, Any]]:
    return await ctx.db.query("items").with_index("by_name", lambda q: q.eq("name", name)).collect()


@query
async def count(ctx: QueryCtx) -> int:
    return len(await ctx.db.query("items").collect())


@migration("items")
def fill_label(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("label") is not None:
        return item
    return {**item, "label": f"label of {item['name']}"}


@migration("items")
async def drop_odd(ctx: MutationCtx, item: dict[str, Any]) -> Any:
    from backend import DELETE

    if item["n"] % 2:
        await ctx.db.insert("tags", {"word": f"was {item['name']}"})
        return DELETE
    return item
