"""verify-log in batches: the first difference named exactly, in memory that does not grow."""

from __future__ import annotations

import tracemalloc
from typing import Any

from sqlalchemy import delete, insert, select, update

from backend.storage.store import Store
from backend.storage.tables import documents, index_entries, log
from backend.storage.verify import BATCH_STATEMENTS, verify_log
from backend.testing import TestBackend
from tests.support.query_plans import assert_reads_by_index, fill_unanalyzed, plan_of

BY_AUTHOR = "notes.by_author"


async def _notes(t: TestBackend, authors: list[str], body: str = "b") -> list[str]:
    """One note per author, in one commit; their ids in the order written."""

    async def add(ctx: Any) -> list[str]:
        return [await ctx.db.insert("notes", {"author": a, "body": body}) for a in authors]

    return await t.run(add)


async def _entries(store: Store) -> dict[str, bytes]:
    """The by_author key of each note."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(index_entries.c.doc_id, index_entries.c.key).where(
                index_entries.c.index_name == BY_AUTHOR
            )
        )
        return {r.doc_id: bytes(r.key) for r in rows}


async def _execute(store: Store, *statements: Any) -> None:
    async with store.engine.begin() as conn:
        for statement in statements:
            await conn.execute(statement)


async def _difference(t: TestBackend) -> str | None:
    """What a verify in batches of two documents (and two entries) names."""
    return (await verify_log(t.engine.store, t.engine.schema, batch=2)).difference


async def test_the_first_document_in_id_order_is_named_across_batches(basic: TestBackend) -> None:
    ids = sorted(await _notes(basic, [f"a{i}" for i in range(9)]))
    store = basic.engine.store
    assert await _difference(basic) is None
    tampered = documents.update().values(value='{"tampered": 1}')
    await _execute(
        store,
        tampered.where(documents.c.doc_id == ids[7]),
        tampered.where(documents.c.doc_id == ids[3]),
    )
    assert await _difference(basic) == f"document {ids[3]} differs from its last logged version"

    await _execute(store, delete(documents).where(documents.c.doc_id == ids[1]))
    assert await _difference(basic) == (
        f"document {ids[1]} is in the log but missing from the documents table"
    )


async def test_a_document_the_log_never_wrote_is_named_after_the_last_logged_id(
    basic: TestBackend,
) -> None:
    ids = sorted(await _notes(basic, ["a", "b", "c"]))
    store = basic.engine.store
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(documents).where(documents.c.doc_id == ids[0]))).one()
    stray = "z" * 32  # after every logged id: only the documents side has a batch left
    await _execute(
        store, insert(documents).values(doc_id=stray, table_name="notes", value=row.value)
    )
    assert await _difference(basic) == (
        f"document {stray} exists but the log says it was never written or was deleted"
    )


async def test_the_first_missing_entry_in_key_order_is_named_not_in_document_order(
    basic: TestBackend,
) -> None:
    ids = await _notes(basic, [f"author {i}" for i in range(8)])
    keys = await _entries(basic.engine.store)
    # two documents whose keys sort the other way round from their ids (documents are checked
    # in id order); among 8 random ids all in key order too would be a 1 in 40,320 chance
    early, late = next(
        (a, b) for a in sorted(ids) for b in sorted(ids) if a < b and keys[b] < keys[a]
    )
    await _execute(
        basic.engine.store,
        delete(index_entries).where(index_entries.c.key.in_([keys[early], keys[late]])),
    )
    assert await _difference(basic) == (
        f"index entry {BY_AUTHOR} {keys[late].hex()} for {late} is missing"
    )


async def test_an_entry_nobody_implies_is_named_before_a_later_missing_one(
    basic: TestBackend,
) -> None:
    ids = await _notes(basic, ["m", "n", "o", "p", "q"])
    keys = await _entries(basic.engine.store)
    in_key_order = sorted(ids, key=lambda doc_id: keys[doc_id])
    # a stray entry sorting just after the second key, and the last document's entry gone
    stray = keys[in_key_order[1]][:-1] + b"\x00\x00"
    await _execute(
        basic.engine.store,
        insert(index_entries).values(index_name=BY_AUTHOR, key=stray, doc_id=in_key_order[0]),
        delete(index_entries).where(index_entries.c.key == keys[in_key_order[-1]]),
    )
    assert await _difference(basic) == (
        f"index entry {BY_AUTHOR} {stray.hex()} for {in_key_order[0]} should not exist"
    )
    # the stray entry gone, the missing one is what is left
    await _execute(basic.engine.store, delete(index_entries).where(index_entries.c.key == stray))
    last = in_key_order[-1]
    assert await _difference(basic) == (
        f"index entry {BY_AUTHOR} {keys[last].hex()} for {last} is missing"
    )


async def test_extra_entries_are_found_when_the_counts_alone_differ(basic: TestBackend) -> None:
    ids = await _notes(basic, ["a", "b", "c", "d", "e"])
    keys = await _entries(basic.engine.store)
    # an entry whose key ends with a real id, but not the key that document implies
    forged = keys[ids[2]].replace(b"c", b"x", 1)
    await _execute(
        basic.engine.store,
        insert(index_entries).values(index_name=BY_AUTHOR, key=forged, doc_id=ids[2]),
    )
    assert await _difference(basic) == (
        f"index entry {BY_AUTHOR} {forged.hex()} for {ids[2]} should not exist"
    )


async def test_entries_of_an_index_the_schema_lacks_should_not_exist(basic: TestBackend) -> None:
    ids = await _notes(basic, ["a", "b", "c"])
    keys = await _entries(basic.engine.store)
    await _execute(
        basic.engine.store,
        insert(index_entries).values(index_name="notes.gone", key=keys[ids[1]], doc_id=ids[1]),
    )
    assert await _difference(basic) == (
        f"index entry notes.gone {keys[ids[1]].hex()} for {ids[1]} should not exist"
    )


async def test_an_entry_naming_another_document_is_named(basic: TestBackend) -> None:
    ids = await _notes(basic, ["a", "b", "c", "d"])
    keys = await _entries(basic.engine.store)
    await _execute(
        basic.engine.store,
        update(index_entries).where(index_entries.c.key == keys[ids[3]]).values(doc_id=ids[0]),
    )
    assert await _difference(basic) == (
        f"index entry {BY_AUTHOR} {keys[ids[3]].hex()} points at {ids[0]}, expected {ids[3]}"
    )


async def _verify_peak(t: TestBackend) -> int:
    """The most memory Python held at once during one verify (tracemalloc's peak)."""
    tracemalloc.start()
    try:
        report = await verify_log(t.engine.store, t.engine.schema, batch=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.difference
    return peak


async def test_memory_stays_flat_as_the_documents_grow_tenfold(basic: TestBackend) -> None:
    body = "x" * 2300  # about the size of a document in the million
    for _ in range(2):
        await _notes(basic, [f"a{i}" for i in range(100)], body)
    await _verify_peak(basic)  # statements compiled and cached before anything is measured
    small = await _verify_peak(basic)
    for _ in range(18):
        await _notes(basic, [f"a{i}" for i in range(100)], body)
    large = await _verify_peak(basic)
    # holding every document, as a replay into memory does, would need ten times as much
    assert large < small * 1.5, (small, large)
    assert (await verify_log(basic.engine.store, basic.engine.schema)).documents == 2000


async def test_every_batch_reads_by_an_index_with_no_statistics(basic: TestBackend) -> None:
    store = basic.engine.store
    await fill_unanalyzed(store, rows=40_000, docs=10_000)
    params = {
        "after": "doc1000100",
        "last": "doc1002100",
        "batch": 2000,
        "name": BY_AUTHOR,
        "after_key": b"doc1000100",
    }
    for name, statement in BATCH_STATEMENTS.items():
        assert_reads_by_index(store, name, await plan_of(store, statement, params))


async def test_a_document_difference_is_named_before_an_earlier_entry_difference(
    basic: TestBackend,
) -> None:
    ids = sorted(await _notes(basic, [f"a{i}" for i in range(6)]))
    keys = await _entries(basic.engine.store)
    await _execute(
        basic.engine.store,
        delete(index_entries).where(index_entries.c.key == keys[ids[0]]),  # the first batch
        documents.update().where(documents.c.doc_id == ids[-1]).values(value='{"x": 1}'),
    )
    assert await _difference(basic) == f"document {ids[-1]} differs from its last logged version"


async def test_a_document_of_a_table_not_deployed_is_named(basic: TestBackend) -> None:
    await _notes(basic, ["a", "b"])
    stray = "g" * 32
    await basic.run(lambda ctx: ctx.db.insert("notes", {"author": "c", "body": "b"}))
    async with basic.engine.store.engine.begin() as conn:
        ts = (await conn.execute(select(log.c.ts).order_by(log.c.ts.desc()).limit(1))).scalar()
        await conn.execute(
            insert(log).values(ts=ts, seq=99, table_name="ghosts", doc_id=stray, value="{}")
        )
        await conn.execute(insert(documents).values(doc_id=stray, table_name="ghosts", value="{}"))
    assert await _difference(basic) == (
        f"document {stray} belongs to table 'ghosts', not in the schema"
    )
