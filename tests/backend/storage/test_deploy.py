"""Deploying a changed schema onto stored documents, through the test harness.

Each test writes 500 items with one version of tests/apps/evolve, then opens the same database
with another version and deploys it: an index added, dropped or redefined, a field made
required (refused, then done in two steps with a migration), a table undeclared.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select, text

from backend import Int64, define_schema, table
from backend.errors import ConvexError
from backend.migrator import TABLE as MIGRATIONS
from backend.storage.deployment import IndexState, load_deployment
from backend.storage.store import Store
from backend.storage.tables import (
    commits,
    documents,
    index_entries,
    log,
    schema_indexes,
    schema_tables,
)
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from backend.udf.app import App, load_app

ITEMS = 500


@functools.cache
def evolve(version: str) -> App:
    return load_app(f"tests.apps.evolve.{version}", "tests.apps.evolve.functions")


async def with_items(t: TestBackend, count: int = ITEMS) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 250):
        ids += await t.mutation(
            "items:add_many", {"count": min(250, count - start), "start": start}
        )
    return ids


async def entries_of(store: Store, storage: str) -> int:
    async with store.engine.connect() as conn:
        query = select(func.count()).select_from(index_entries)
        return int(
            (await conn.execute(query.where(index_entries.c.index_name == storage))).scalar_one()
        )


async def state_of(store: Store) -> dict[str, Any]:
    """Everything a deploy could change, to compare before and after."""
    async with store.engine.connect() as conn:
        out: dict[str, Any] = {}
        for table in (documents, index_entries, schema_tables, schema_indexes, commits):
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted(
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows
            )
        out["log"] = (await conn.execute(select(func.count()).select_from(log))).scalar_one()
    out["fence"] = (await load_deployment(store)).fence
    return out


async def assert_verified(t: TestBackend) -> None:
    report = await verify_log(t.engine.store)
    assert report.ok, report.difference
    assert report.building == ()
    assert report.dropping == ()


@pytest.fixture
async def v1(database_url: str | None) -> Any:
    async with TestBackend(database_url, app=evolve("v1")) as t:
        yield t


async def test_a_new_index_is_backfilled_with_every_existing_document(v1: TestBackend) -> None:
    ids = await with_items(v1)
    async with v1.reopen(evolve("with_index"), deploy=False) as t:
        with pytest.raises(ConvexError) as refused:  # not deployed yet: no function can use it
            await t.query("items:by_n", {"low": 0, "high": ITEMS})
        assert refused.value.data["code"] == "SCHEMA_OUTDATED"

        report = await t.deploy()
        assert report.ok
        assert report.changes == ["index items.by_n is new"]
        assert report.built == {"items.by_n": ITEMS}
        found = await t.query("items:by_n", {"low": 0, "high": ITEMS})
        assert sorted(d["_id"] for d in found) == sorted(ids)
        assert [d["n"] for d in found] == list(range(ITEMS))  # in the index's order
        assert [d["n"] for d in await t.query("items:by_n", {"low": 10, "high": 13})] == [
            10,
            11,
            12,
        ]
        await t.mutation("items:add", {"name": "new", "n": 1000})  # the new app maintains it
        assert len(await t.query("items:by_n", {"low": 1000, "high": 1001})) == 1
        await assert_verified(t)


async def test_a_required_field_the_documents_lack_is_refused_and_nothing_changes(
    v1: TestBackend,
) -> None:
    ids = await with_items(v1)
    before = await state_of(v1.engine.store)
    async with v1.reopen(evolve("required_label"), deploy=False) as t:
        report = await t.deploy()
    assert not report.ok
    refusal = report.refusal("items")
    assert refusal is not None
    assert refusal.total == ITEMS
    assert len(refusal.failures) == 10
    assert {f.doc_id for f in refusal.failures} <= set(ids)
    assert {(f.field, f.reason) for f in refusal.failures} == {("label", "Field required")}
    text_report = report.format()
    assert "'items'" in text_report
    assert "label" in text_report
    assert "500 documents" in text_report
    assert await state_of(v1.engine.store) == before
    await v1.mutation("items:add", {"name": "still", "n": -1})  # the old app is untouched
    await assert_verified(v1)


async def test_a_dropped_index_leaves_no_entries(v1: TestBackend) -> None:
    await with_items(v1)
    store = v1.engine.store
    assert await entries_of(store, "items.by_name") == ITEMS
    async with v1.reopen(evolve("without_index")) as t:  # deployed on opening
        assert await entries_of(store, "items.by_name") == 0
        deployment = await load_deployment(store)
        assert deployment.ready("items", "by_name") is None
        assert "items.by_name" not in deployment.indexes
        await t.mutation("items:add", {"name": "after", "n": 1})
        assert await entries_of(store, "items.by_name") == 0
        await assert_verified(t)


async def test_a_redefined_index_is_rebuilt_beside_the_old_one_then_replaces_it(
    v1: TestBackend,
) -> None:
    await with_items(v1)
    store = v1.engine.store
    async with v1.reopen(evolve("redefined_index"), deploy=False) as t:
        report = await t.deploy()
        assert report.ok
        assert report.built == {"items.by_name#2": ITEMS}
        assert report.dropped == ["items.by_name"]
        assert await entries_of(store, "items.by_name") == 0
        assert await entries_of(store, "items.by_name#2") == ITEMS
        # the index is now (n, name): equal on n first
        found = await t.run(
            lambda ctx: (
                ctx.db.query("items").with_index("by_name", lambda q: q.eq("n", 7)).collect()
            )
        )
        assert [d["name"] for d in found] == ["item 7"]
        await assert_verified(t)
    # the old app's queries on the redefined index are refused, not answered from nowhere
    assert await v1.engine.follow_deployment()
    with pytest.raises(ConvexError) as refused:
        await v1.query("items:by_name", {"name": "item 7"})
    assert refused.value.data["code"] == "SCHEMA_OUTDATED"


async def test_a_migration_fills_the_field_then_the_required_schema_deploys(
    v1: TestBackend,
) -> None:
    await with_items(v1)
    async with v1.reopen(evolve("optional_label")) as step_one:
        first = await step_one.migration_step("fill_label", batch_size=100)
        assert (first.processed, first.changed, first.done) == (100, 100, False)
        labelled = await step_one.run(
            lambda ctx: ctx.db.query("items").filter(lambda d: d.get("label") is not None).collect()
        )
        assert len(labelled) == 100  # one batch, one transaction
        done = await step_one.run_migration("items:fill_label", batch_size=100)
        assert (done.processed, done.changed, done.done) == (ITEMS, ITEMS, True)
        again = await step_one.run_migration("fill_label")
        assert (again.processed, again.changed, again.done) == (ITEMS, ITEMS, True)
        await assert_verified(step_one)
    async with v1.reopen(evolve("required_label"), deploy=False) as step_two:
        report = await step_two.deploy()
        assert report.ok, report.format()
        assert report.changes == ["table 'items' has new fields"]
        assert report.validated == {"items": ITEMS}
        items = await step_two.run(lambda ctx: ctx.db.query("items").collect())
        assert {d["label"] for d in items} == {f"label of item {i}" for i in range(ITEMS)}
        records = await step_two.run(lambda ctx: ctx.db.query(MIGRATIONS).collect())
        assert [(r["name"], r["done"]) for r in records] == [("items:fill_label", True)]
        await assert_verified(step_two)


async def test_a_table_still_holding_documents_cannot_be_undeclared(v1: TestBackend) -> None:
    await with_items(v1, 20)
    before = await state_of(v1.engine.store)
    async with v1.reopen(evolve("without_items"), deploy=False) as t:
        report = await t.deploy()
    assert not report.ok
    refusal = report.refusal("items")
    assert refusal is not None
    assert refusal.undeclared
    assert refusal.total == 20
    assert "no longer declared" in report.format()
    assert "migration" in report.format()
    assert await state_of(v1.engine.store) == before

    # a migration deletes them (moving what it keeps elsewhere), then the table can go
    done = await v1.run_migration("drop_odd")
    assert (done.processed, done.deleted) == (20, 10)
    assert len(await v1.run(lambda ctx: ctx.db.query("tags").collect())) == 10
    async with v1.reopen(evolve("without_items"), deploy=False) as t:
        assert (await t.deploy()).refusal("items").total == 10  # type: ignore[union-attr]

    async def delete_all(ctx: Any) -> None:
        for item in await ctx.db.query("items").collect():
            await ctx.db.delete(item["_id"])

    await v1.run(delete_all)
    async with v1.reopen(evolve("without_items"), deploy=False) as t:
        report = await t.deploy()
        assert report.ok, report.format()
        assert "table 'items' is deployed but no longer declared" in report.changes
        deployment = await load_deployment(t.engine.store)
        assert "items" not in deployment.tables
        assert not [i for i in deployment.indexes.values() if i.table == "items"]
        await assert_verified(t)


async def test_an_old_server_may_write_unchanged_tables_only(v1: TestBackend) -> None:
    await with_items(v1, 10)
    async with v1.reopen(evolve("with_index")):
        pass
    # v1 is now an old server: its commits hit the fence, it reads the deployment again
    await v1.run(lambda ctx: ctx.db.insert("tags", {"word": "fine"}))
    with pytest.raises(ConvexError) as refused:
        await v1.mutation("items:add", {"name": "stale", "n": 1})
    assert refused.value.data["code"] == "SCHEMA_OUTDATED"
    assert refused.value.data["table"] == "items"
    assert [d["n"] for d in await v1.query("items:by_name", {"name": "item 3"})] == [3]
    async with v1.reopen(evolve("with_index")) as current:
        assert await current.query("items:count") == 10  # nothing stale was written
        await assert_verified(current)


async def test_deploying_the_deployed_schema_changes_nothing(v1: TestBackend) -> None:
    await with_items(v1, 10)
    before = await state_of(v1.engine.store)
    report = await v1.deploy()
    assert report.ok
    assert report.changes == []
    assert "nothing to do" in report.format()
    assert await state_of(v1.engine.store) == before


async def test_writes_made_during_a_backfill_are_in_the_index_when_it_goes_live(
    v1: TestBackend,
) -> None:
    ids = await with_items(v1)
    live = set(ids)
    stop = asyncio.Event()
    written = 0
    fenced: list[str] = []

    async def old_app_writes() -> None:
        nonlocal written
        k = 0
        while not stop.is_set():
            k += 1
            try:
                live.add(await v1.mutation("items:add", {"name": f"during {k}", "n": 10_000 + k}))
                target = ids[k % ITEMS]
                if target in live:
                    await v1.mutation("items:touch", {"id": target, "n": 20_000 + k})
                victim = ids[(k * 7) % ITEMS]
                if k % 3 == 0 and victim in live:
                    await v1.mutation("items:remove", {"id": victim})
                    live.discard(victim)
            except ConvexError as error:  # the new index went live: the old app is fenced
                fenced.append(error.data["code"])
                return
            written += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(old_app_writes())
    async with v1.reopen(evolve("with_index"), deploy=False) as t:
        report = await t.deploy(batch_size=10, batch_pause=0.005)
        assert report.ok
        stop.set()
        await writer
        assert written > 5, "the old app wrote during the backfill"
        assert fenced in ([], ["SCHEMA_OUTDATED"])
        found = await t.query("items:by_n", {"low": -(10**9), "high": 10**9})
        assert sorted(d["_id"] for d in found) == sorted(live)
        assert [d["n"] for d in found] == sorted(d["n"] for d in found)
        await assert_verified(t)


async def test_a_first_deploy_rebuilds_indexes_an_older_engine_left_behind(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=evolve("with_index")) as t:
        await with_items(t, 30)
        store = t.engine.store
        # as a database from before deploys: no record, an index that was added late (only
        # some entries) and one that was dropped (its entries left behind)
        async with store.engine.begin() as conn:
            await conn.execute(schema_tables.delete())
            await conn.execute(schema_indexes.delete())
            await conn.execute(
                text(
                    "DELETE FROM index_entries WHERE index_name = 'items.by_n' AND key IN"
                    " (SELECT key FROM index_entries WHERE index_name = 'items.by_n'"
                    " ORDER BY key LIMIT 10)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO index_entries (index_name, key, doc_id)"
                    " SELECT 'items.by_old', key, doc_id FROM index_entries"
                    " WHERE index_name = 'items.by_name'"
                )
            )
        report = await t.deploy()
        assert report.ok, report.format()
        assert await entries_of(store, "items.by_n") == 30
        assert await entries_of(store, "items.by_old") == 0
        deployment = await load_deployment(store)
        assert {i.state for i in deployment.indexes.values()} == {IndexState.READY}
        assert len(await t.query("items:by_n", {"low": 0, "high": 30})) == 30
        await assert_verified(t)


class Thing(BaseModel):
    meta: dict[str, Any] | None = None
    tags: list[Any] = []
    label: str = ""


def things(*indexes: tuple[str, ...]) -> App:
    definition = table(Thing)
    for n, fields in enumerate(indexes):
        definition = definition.index(f"i{n}", *fields)
    return App(schema=define_schema(things=definition))


async def test_a_backfill_keys_every_kind_of_value_as_a_write_would(
    database_url: str | None,
) -> None:
    """The backfill reads the indexed fields out of the stored JSON in SQL: a path that is
    missing, null, through a list or through a special value must key as ``key_of`` keys."""
    odd: list[Any] = [
        None,
        {},
        {"x": None},
        {"x": Int64(-5)},
        {"x": 2.5},
        {"x": 3},
        {"x": float("inf")},
        {"x": -0.0},
        {"x": True},
        {"x": "plain"},
        {"x": "nul \x00 inside"},
        {"x": "ünïcödé ☃"},
        {"x": b"\x00\xffbytes"},
        {"x": [1, "two", {"three": 3}]},
        {"x": {"y": {"z": 1}}},
        {"x": {"bytes": b"\x01", "big": Int64(2**40)}},
        {"y": 1},
    ]
    async with TestBackend(database_url, app=things()) as t:

        async def fill(ctx: Any) -> None:
            for n, meta in enumerate(odd):
                fields: dict[str, Any] = {"tags": [n, meta] if n % 2 else [], "label": str(n)}
                if meta is not None or n == 0:
                    fields["meta"] = meta
                await ctx.db.insert("things", fields)

        await t.run(fill)
        indexed = things(("meta.x",), ("meta.x.y", "label"), ("tags",), ("meta",))
        async with t.reopen(indexed, deploy=False) as t2:
            report = await t2.deploy()
            assert report.ok, report.format()
            assert set(report.built.values()) == {len(odd)}
            await assert_verified(t2)  # every entry exactly as key_of computes it
            found = await t2.run(
                lambda ctx: (
                    ctx.db.query("things").with_index("i0", lambda q: q.eq("meta.x", 3)).collect()
                )
            )
            assert [d["label"] for d in found] == ["5"]


async def test_documents_the_old_app_writes_during_the_deploy_are_checked_too(
    v1: TestBackend,
) -> None:
    """Every stored item has a label, so the check passes; but once it has (the new index is
    being built), the old app (label optional) inserts items without one: the deploy is
    refused when it goes live, and leaves nothing behind, its half-built index included."""
    await with_items(v1, 300)
    async with v1.reopen(evolve("optional_label")) as old:
        await old.run_migration("fill_label")
        store = old.engine.store
        async with old.reopen(evolve("required_label_indexed"), deploy=False) as new:
            deploying = asyncio.create_task(new.deploy(batch_size=10, batch_pause=0.01))
            for _ in range(1000):  # the check is over: the build is recorded
                if "items.by_n" in (await load_deployment(store)).indexes:
                    break
                await asyncio.sleep(0.005)
            else:
                raise AssertionError("the build never started")
            late = [await old.mutation("items:add", {"name": "no label", "n": -1})]
            report = await deploying
            assert not report.ok
            refusal = report.refusal("items")
            assert refusal is not None
            assert [(f.doc_id, f.field, f.reason) for f in refusal.failures] == [
                (late[0], "label", "Field required")
            ]
            deployment = await load_deployment(store)
            assert deployment.tables["items"] == old.engine.code_schema.describe("items")
            assert "items.by_n" not in deployment.indexes
            assert await entries_of(store, "items.by_n") == 0
            assert {i.state for i in deployment.indexes.values()} == {IndexState.READY}
        await old.mutation("items:add", {"name": "still served", "n": 0})
        await assert_verified(old)
