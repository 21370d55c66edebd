"""Building an index: the two ways a scan reads a table, and an interrupted scan going on."""

from __future__ import annotations

import asyncio

from backend.storage.backfill import _pg_write
from backend.storage.database import DatabaseKind
from backend.storage.deployment import IndexState, load_deployment
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from tests.backend.storage.test_deploy import entries_of, evolve, with_items

TAGS = 40


async def test_a_small_table_beside_a_big_one_is_read_through_its_own_index_and_resumed(
    database_url: str | None,
) -> None:
    """40 tags beside 500 items: the scan reads the tags through their by_creation_time index
    (not the documents table in physical order). Cancelled halfway, it goes on from there."""
    async with TestBackend(database_url, app=evolve("v1")) as t:
        await with_items(t)

        async def tag(ctx: object) -> None:
            for i in range(TAGS):
                await ctx.db.insert("tags", {"word": f"w{i:02}"})  # type: ignore[attr-defined]

        await t.run(tag)
        async with t.reopen(evolve("tags_index"), deploy=False) as t2:
            store = t2.engine.store
            deploying = asyncio.create_task(t2.deploy(batch_size=2, batch_pause=0.02))
            for _ in range(500):
                build = (await load_deployment(store)).indexes.get("tags.by_word")
                if build is not None and build.cursor is not None:
                    break
                await asyncio.sleep(0.01)
            deploying.cancel()
            await asyncio.gather(deploying, return_exceptions=True)
            build = (await load_deployment(store)).indexes["tags.by_word"]
            assert build.state is IndexState.BUILDING
            assert build.cursor is not None
            assert build.cursor[:1] not in (b"#", b"@")  # a by_creation_time key
            assert 0 < await entries_of(store, "tags.by_word") < TAGS
            assert (await verify_log(store)).ok

            report = await t2.deploy()
            assert report.ok, report.format()
            assert report.built == {"tags.by_word": TAGS}
            words = await t2.run(lambda ctx: ctx.db.query("tags").with_index("by_word").collect())
            assert [w["word"] for w in words] == [f"w{i:02}" for i in range(TAGS)]
            assert (await verify_log(store)).ok


async def test_a_postgres_batch_that_meets_a_document_twice_goes_again(
    database_url: str | None,
) -> None:
    """Read in page order, a document an update moved to a later page is met again: the
    batch's plain insert then fails on the key already there, and the batch is redone."""
    async with TestBackend(database_url, app=evolve("v1")) as t:
        store = t.engine.store
        if store.kind is DatabaseKind.SQLITE:
            return  # rowids do not move: SQLite reads no document twice
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO schema_indexes (storage, table_name, name, fields, state, scanned)"
                " VALUES ('items.x', 'items', 'x', '[]', 'building', false)"
            )
        await _pg_write(store, [("items.x", b"\x01", "a" * 32)], b"@1", False, ["items.x"])
        entries = [("items.x", b"\x01", "a" * 32), ("items.x", b"\x02", "b" * 32)]
        await _pg_write(store, entries, b"@2", True, ["items.x"])
        assert await entries_of(store, "items.x") == 2
        build = (await load_deployment(store)).indexes["items.x"]
        assert (build.cursor, build.scanned) == (b"@2", True)
