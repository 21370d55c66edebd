"""The store's fast paths keep its invariants.

A writer buffers its writes and sends them before its next read or with the commit (on
PostgreSQL the commit is one statement, on SQLite one call on the worker thread): reads still
see the transaction's own writes, the projections still match the log, nothing is kept of an
attempt that fails, and PostgreSQL still draws a timestamp only under the commit lock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, text

from backend.storage.database import libpq_dsn
from backend.storage.store import RetryableConflict, StorageError, Store, StoreWriter, decode_docs
from backend.storage.tables import documents, log, mutation_outcomes
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from backend.values.index_key import KeyRange
from tests.conftest import POSTGRES_URL, basic_app

WRITE_SET = '{"ids":[],"keys":{}}'


def _note(t: TestBackend, doc_id: str, body: str, author: str = "a") -> dict[str, Any]:
    return {"_id": doc_id, "_creationTime": time.time() * 1000, "author": author, "body": body}


def _keys(t: TestBackend, document: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(i.qualified_name, i.key_of(document)) for i in t.engine.schema.indexes_of("notes")]


async def _commit(writer: StoreWriter, now_ns: int | None = None) -> int:
    return await writer.commit(
        now_ns=time.time_ns() if now_ns is None else now_ns,
        write_set_json=WRITE_SET,
        function_path="test",
        identity=None,
    )


async def test_a_writer_reads_its_buffered_writes(basic: TestBackend) -> None:
    store = basic.engine.store
    by_author = "notes.by_author"
    one, two = _note(basic, "id1" * 8, "one"), _note(basic, "id2" * 8, "two")
    async with store.writer() as writer:
        await writer.insert("notes", one, _keys(basic, one))
        await writer.insert("notes", two, _keys(basic, two))
        assert await writer.get(one["_id"]) == ("notes", one)
        found = await writer.scan(by_author, KeyRange.everything(), descending=False, limit=10)
        assert [doc["body"] for _key, doc in found] == ["one", "two"]

        moved = {**one, "author": "b", "body": "moved"}
        await writer.replace("notes", moved, _keys(basic, one), _keys(basic, moved))
        await writer.delete("notes", two["_id"], _keys(basic, two))
        assert await writer.get(one["_id"]) == ("notes", moved)
        assert await writer.get(two["_id"]) is None
        found = await writer.scan(by_author, KeyRange.everything(), descending=True, limit=10)
        assert [doc["body"] for _key, doc in found] == ["moved"]

        three = _note(basic, "id3" * 8, "three")  # inserted after the other writes
        await writer.insert("notes", three, _keys(basic, three))
        ts = await _commit(writer)

    async with store.snapshot() as reader:
        assert reader.snapshot_ts == ts
        assert await reader.get(one["_id"]) == ("notes", moved)
        assert await reader.get(three["_id"]) == ("notes", three)
        assert await reader.get(two["_id"]) is None
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(log).where(log.c.ts == ts).order_by(log.c.seq))).all()
    assert [(r.seq, r.doc_id, r.value is None) for r in rows] == [
        (0, one["_id"], False),
        (1, two["_id"], False),
        (2, one["_id"], False),
        (3, two["_id"], True),
        (4, three["_id"], False),
    ]
    assert (await verify_log(store, basic.engine.schema)).ok


async def test_mutations_that_mix_every_write_leave_projections_that_match_the_log(
    basic: TestBackend,
) -> None:
    async def body(ctx: Any) -> None:
        a = await ctx.db.insert("notes", {"author": "a", "body": "1", "tags": ["x"]})
        b = await ctx.db.insert("notes", {"author": "b", "body": "2"})
        await ctx.db.patch(a, {"priority": "high"})
        await ctx.db.insert("notes", {"author": "c", "body": "3"})
        await ctx.db.delete(b)
        await ctx.db.replace(a, {"author": "d", "body": "4"})
        await ctx.db.insert("counters", {"name": "n", "value": 1})

    await basic.run(body)
    await basic.run(body)
    rows = await basic.run(lambda ctx: ctx.db.query("notes").collect())
    assert sorted(r["body"] for r in rows) == ["3", "3", "4", "4"]
    assert (await verify_log(basic.engine.store, basic.engine.schema)).ok


async def test_writes_without_a_commit_are_refused_and_rolled_back(basic: TestBackend) -> None:
    store = basic.engine.store
    note = _note(basic, "id4" * 8, "lost")

    async def write_without_commit() -> None:
        async with store.writer() as writer:
            await writer.insert("notes", note, _keys(basic, note))
            await writer.get(note["_id"])  # sent to the database, but not committed

    with pytest.raises(StorageError):
        await write_without_commit()
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(documents.c.doc_id))).all() == []


async def test_a_failed_commit_keeps_nothing(basic: TestBackend) -> None:
    store = basic.engine.store
    first = _note(basic, "id5" * 8, "first")
    async with store.writer() as writer:
        await writer.insert("notes", first, _keys(basic, first))
        await _commit(writer)
    before = await store.latest_ts()
    second = _note(basic, "id6" * 8, "second")

    async def insert_twice() -> None:
        async with store.writer() as writer:
            await writer.insert("notes", second, _keys(basic, second))
            await writer.insert("notes", {**first, "body": "again"}, [])
            await _commit(writer)

    with pytest.raises(RetryableConflict):  # the id is taken: the whole commit fails
        await insert_twice()
    assert await store.latest_ts() == before
    async with store.snapshot() as reader:
        assert await reader.get(second["_id"]) is None
    assert (await verify_log(store, basic.engine.schema)).ok


async def test_a_snapshot_may_skip_learning_its_timestamp(basic: TestBackend) -> None:
    await basic.mutation("notes:add", {"author": "a", "body": "b"})
    async with basic.engine.store.snapshot(timestamped=False) as reader:
        with pytest.raises(RuntimeError):
            _ = reader.snapshot_ts
    async with basic.engine.store.snapshot() as reader:
        assert reader.snapshot_ts == await basic.engine.store.latest_ts() > 0


async def test_a_wire_mutation_keeps_its_outcome_under_its_commit_ts(basic: TestBackend) -> None:
    engine = basic.engine
    await basic.mutation("counters:create", {"name": "c"})
    wrote = await engine.run_mutation("counters:increment", {"name": "c"}, request=("s", 1))

    async def read_only(txn: Any) -> str:
        return "nothing written"

    quiet = await engine.write(read_only, function_path="t", request=("s", 2))
    async with engine.store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(mutation_outcomes.c.request_id, mutation_outcomes.c.ts).order_by(
                    mutation_outcomes.c.request_id
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, wrote.ts), (2, quiet.ts)]
    assert quiet.ts == wrote.ts  # nothing committed in between
    again = await engine.write(read_only, function_path="t", request=("s", 2))
    assert (again.value, again.ts, again.replayed) == ("nothing written", quiet.ts, True)


def test_decode_docs_refuses_text_that_is_not_one_value() -> None:
    assert decode_docs(['{"a":1}', '{"b":[2]}']) == [{"a": 1}, {"b": [2]}]
    assert decode_docs([]) == []
    with pytest.raises(StorageError):
        decode_docs(['{"a":1},{"b":2}'])


# ---- PostgreSQL: the one-statement commit ---------------------------------------------------


async def test_postgres_draws_a_timestamp_only_under_the_commit_lock() -> None:
    async with TestBackend(POSTGRES_URL, app=basic_app()) as t:
        store = t.engine.store

        async def second_commit() -> int:
            note = _note(t, "id8" * 8, "second")
            async with store.writer() as writer:
                await writer.insert("notes", note, _keys(t, note))
                return await _commit(writer, now_ns=0)  # ts = the sequence's next value

        first = _note(t, "id7" * 8, "first")
        async with store.writer() as writer:
            await writer.insert("notes", first, _keys(t, first))
            first_ts = await _commit(writer)  # holds the lock until this block ends
            waiting = asyncio.create_task(second_commit())
            await asyncio.sleep(0.5)
            assert not waiting.done()
            # the waiting commit has not advanced the sequence: it has not drawn its timestamp
            async with store.engine.connect() as conn:
                last = (await conn.execute(text("SELECT last_value FROM commit_ts_seq"))).scalar()
            assert last == first_ts
        assert await waiting == first_ts + 1


async def test_postgres_notifies_the_commit_timestamp() -> None:
    async with TestBackend(POSTGRES_URL, app=basic_app()) as t:
        store: Store = t.engine.store
        heard: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(libpq_dsn(store.url))
        try:
            await listener.add_listener(
                store.notify_channel, lambda *args: heard.put_nowait(args[-1])
            )
            result = await t.mutation_result("notes:add", {"author": "a", "body": "b"})
            assert await asyncio.wait_for(heard.get(), 5) == str(result.ts)
        finally:
            await listener.close()
