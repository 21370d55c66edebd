"""Optimistic concurrency on the engine's read sets, on SQLite and PostgreSQL.

A mutation reads at a snapshot and is checked at commit against the commits made after it: only
a real intersection (a document it read, a key in a range it read) runs it again, with the
reason logged; retries on one hot document wait their turn instead of sleeping; the results are
serializable: write skew is refused, counters count exactly, also across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.engine import Engine
from backend.storage.occ import OverlappingWrites, PendingCommit, SqlRows, pg_batch_params
from backend.storage.readset import ReadSet, WriteSet
from backend.storage.store import ReadSetConflict, Store
from backend.storage.verify import verify_log
from backend.system import system_functions, system_schema
from backend.testing import TestBackend
from backend.transactions.transaction import Transaction
from backend.values.index_key import KeyRange
from tests.backend.storage.test_durability import _spawn, _url_and_schema
from tests.conftest import basic_app


async def _counter(t: TestBackend, name: str) -> int:
    counter: Any = await t.query("counters:get", {"name": name})
    return int(counter["value"])


@contextlib.asynccontextmanager
async def _other_process(basic: TestBackend) -> AsyncIterator[Engine]:
    """A second engine with its own store on the same database: another process, as far as
    the committer can tell."""
    store = Store(basic.engine.store.url, pg_schema=basic.engine.store.pg_schema)
    try:
        yield Engine(
            store,
            basic_app(),
            system_schema=system_schema(),
            system_functions=system_functions(),
        )
    finally:
        await store.close()


async def test_sixty_four_writers_on_one_document_all_succeed_and_count_exactly(
    basic: TestBackend,
) -> None:
    await basic.mutation("counters:create", {"name": "hot"})
    results = await asyncio.gather(
        *(basic.mutation("counters:increment", {"name": "hot"}) for _ in range(64))
    )
    assert sorted(results) == list(range(1, 65))
    assert await _counter(basic, "hot") == 64
    assert (await verify_log(basic.engine.store, basic.engine.schema)).ok


async def test_writers_on_distinct_documents_never_retry(basic: TestBackend) -> None:
    names = [f"c{i}" for i in range(16)]
    for name in names:
        await basic.mutation("counters:create", {"name": name})
    before = basic.engine.retries
    for _ in range(3):
        await asyncio.gather(
            *(basic.mutation("counters:increment", {"name": name}) for name in names)
        )
    assert basic.engine.retries == before
    assert [await _counter(basic, name) for name in names] == [3] * 16


async def test_twelve_racing_creates_of_one_name_make_one_document(basic: TestBackend) -> None:
    created = await asyncio.gather(
        *(basic.mutation("counters:ensure", {"name": "once"}) for _ in range(12))
    )
    assert sorted(created) == [False] * 11 + [True]
    assert await basic.query("counters:named", {"name": "once"}) == 1


async def test_a_conflict_reruns_the_loser_and_logs_which_document_it_met(
    basic: TestBackend, caplog: pytest.LogCaptureFixture
) -> None:
    engine = basic.engine
    counter_id = await basic.mutation("counters:create", {"name": "c"})
    has_read = asyncio.Event()
    go_on = asyncio.Event()
    runs = 0

    async def slow_increment(txn: Transaction) -> int:
        nonlocal runs
        runs += 1
        doc = await txn.get(counter_id, system=True)
        assert doc is not None
        has_read.set()
        await go_on.wait()
        await txn.patch(counter_id, {"value": doc["value"] + 10}, system=True)
        return int(doc["value"])

    caplog.set_level(logging.INFO, logger="backend.engine")
    slow = asyncio.create_task(engine.write(slow_increment, function_path="t:slow"))
    await has_read.wait()
    await basic.mutation("counters:increment", {"name": "c"})  # commits after slow's snapshot
    go_on.set()
    seen = await slow
    assert seen.value == 1  # its second run read the increment
    assert runs == 2
    assert await _counter(basic, "c") == 11
    assert f"conflicted on document {counter_id}" in caplog.text


async def test_a_read_of_an_empty_range_conflicts_with_an_insert_into_it(
    basic: TestBackend,
) -> None:
    engine = basic.engine
    has_read = asyncio.Event()
    go_on = asyncio.Event()
    conflicts: list[str] = []

    async def insert_if_absent(txn: Transaction) -> None:
        found = await txn.query("counters", system=True).with_index("by_name", name="x").first()
        has_read.set()
        await go_on.wait()
        if found is None:
            await txn.insert("counters", {"name": "x", "value": 1}, system=True)

    task = asyncio.create_task(engine.write(insert_if_absent, function_path="t:once"))
    await has_read.wait()
    assert await basic.mutation("counters:ensure", {"name": "x"}) is True
    original = engine.store.commit

    async def commit(member: Any, **options: Any) -> int:
        try:
            return await original(member, **options)
        except ReadSetConflict as exc:
            conflicts.append(exc.conflict.reason)
            raise

    engine.store.commit = commit  # type: ignore[method-assign]
    go_on.set()
    await task
    assert await basic.query("counters:named", {"name": "x"}) == 1
    assert len(conflicts) == 1
    assert conflicts[0].startswith("index counters.by_name range")


async def test_a_mutation_reads_its_own_writes_over_its_snapshot(basic: TestBackend) -> None:
    for i in range(5):
        await basic.mutation("notes:add", {"author": "a", "body": str(i)})

    async def body(ctx: Any) -> dict[str, Any]:
        q = ctx.db.query
        everyone = await q("notes").collect()
        first_two = await q("notes").with_index("by_author", author="a").take(2)
        await ctx.db.delete(first_two[0]["_id"])
        await ctx.db.patch(first_two[1]["_id"], {"author": "b"})
        await ctx.db.patch(everyone[2]["_id"], {"body": "changed"})
        added = await ctx.db.insert("notes", {"author": "a", "body": "new", "priority": "low"})
        return {
            "a": [
                n["body"] for n in await q("notes").with_index("by_author", author="a").collect()
            ],
            "a_first_two": [
                n["body"] for n in await q("notes").with_index("by_author", author="a").take(2)
            ],
            "a_desc": [
                n["body"]
                for n in await q("notes").with_index("by_author", author="a").order("desc").take(2)
            ],
            "b": [
                n["body"] for n in await q("notes").with_index("by_author", author="b").collect()
            ],
            "gone": await ctx.db.get(first_two[0]["_id"]),
            "added": (await ctx.db.get(added))["body"],
        }

    seen = await basic.run(body)
    assert seen == {
        "a": ["changed", "3", "4", "new"],
        "a_first_two": ["changed", "3"],
        "a_desc": ["new", "4"],
        "b": ["1"],
        "gone": None,
        "added": "new",
    }
    after = await basic.run(lambda ctx: ctx.db.query("notes").collect())
    assert sorted(n["body"] for n in after) == ["1", "3", "4", "changed", "new"]
    assert (await verify_log(basic.engine.store, basic.engine.schema)).ok


async def test_a_snapshot_older_than_the_window_is_checked_against_the_commits_table(
    basic: TestBackend,
) -> None:
    engine = basic.engine
    engine.store.recent.capacity = 2
    counter_id = await basic.mutation("counters:create", {"name": "c"})
    has_read = asyncio.Event()
    go_on = asyncio.Event()
    runs = 0

    async def slow(txn: Transaction) -> None:
        nonlocal runs
        runs += 1
        doc = await txn.get(counter_id, system=True)
        assert doc is not None
        has_read.set()
        await go_on.wait()
        await txn.patch(counter_id, {"value": doc["value"] + 100}, system=True)

    task = asyncio.create_task(engine.write(slow, function_path="t:slow"))
    await has_read.wait()
    await basic.mutation("counters:increment", {"name": "c"})
    for i in range(5):  # push the conflicting commit out of the window
        await basic.mutation("notes:add", {"author": "a", "body": str(i)})
    go_on.set()
    await task
    assert runs == 2
    assert await _counter(basic, "c") == 101


async def test_a_commit_made_by_another_process_is_checked(basic: TestBackend) -> None:
    """Another process's commit is in no write set this process keeps: the ``commits`` table
    under the lock is where it is found (here a second store stands for the other process)."""
    engine = basic.engine
    counter_id = await basic.mutation("counters:create", {"name": "c"})
    async with _other_process(basic) as other:
        has_read = asyncio.Event()
        go_on = asyncio.Event()
        runs = 0

        async def slow(txn: Transaction) -> None:
            nonlocal runs
            runs += 1
            doc = await txn.get(counter_id, system=True)
            assert doc is not None
            has_read.set()
            await go_on.wait()
            await txn.patch(counter_id, {"value": doc["value"] + 100}, system=True)

        task = asyncio.create_task(engine.write(slow, function_path="t:slow"))
        await has_read.wait()
        await other.run_mutation("counters:increment", {"name": "c"})
        go_on.set()
        await task
        assert runs == 2
        assert await _counter(basic, "c") == 101


async def test_the_coordinator_learns_this_process_s_write_sets_without_reading_the_log(
    basic: TestBackend,
) -> None:
    store = basic.engine.store
    start = await store.latest_ts()
    first = await basic.mutation_result("notes:add", {"author": "a", "body": "1"})
    second = await basic.mutation_result("notes:add", {"author": "b", "body": "2"})
    known = store.write_sets_between(start, second.ts)
    assert known is not None
    assert len(known) == 2
    assert [len(w.ids) for w in known] == [1, 1]
    assert store.write_sets_between(first.ts, second.ts) == known[1:]
    assert store.write_sets_between(start, second.ts + 1) is None  # not known yet


async def test_two_processes_racing_creates_of_one_name_make_one_document(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=basic_app()) as t:
        await t.mutation("notes:add", {"author": "a", "body": "b"})  # the database exists
        url, schema = _url_and_schema(t)
        procs = [await _spawn(url, schema, "ensure", "12") for _ in range(2)]
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).strip() == b"ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        created = 0
        for proc in procs:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode == 0
            created += int(out.strip().splitlines()[-1])
        assert created == 1
        assert await t.query("counters:named", {"name": "once"}) == 1


def test_key_range_of_a_read_names_its_index_and_start() -> None:
    from backend.storage.readset import ReadSet, WriteSet

    reads = ReadSet()
    reads.add_range("t.by_x", KeyRange(b"\x01", b"\x05"))
    writes = WriteSet()
    writes.add_key("t.by_x", b"\x03")
    found = reads.conflict(writes)
    assert found is not None
    assert found.key == "range:t.by_x:01"
    assert found.reason == "index t.by_x range [01, 05) key 03"
    writes2 = WriteSet()
    writes2.add_key("t.by_x", b"\x05")
    assert reads.conflict(writes2) is None


async def test_the_coordinator_skips_the_database_for_commits_no_live_query_read(
    database_url: str | None,
) -> None:
    from backend.engine import Engine
    from backend.storage.store import Store
    from backend.sync.coordinator import SyncCoordinator
    from backend.system import system_functions, system_schema
    from tests.backend.sync.test_session import Harness, add

    async with TestBackend(database_url, app=basic_app()) as t:
        await t.mutation("counters:create", {"name": "c"})
        coordinator = SyncCoordinator(t.engine, catch_up_interval=60)
        await coordinator.start()
        harness = Harness(t, coordinator)
        other_store = Store(t.engine.store.url, pg_schema=t.engine.store.pg_schema)
        other = Engine(
            other_store,
            basic_app(),
            system_schema=system_schema(),
            system_functions=system_functions(),
        )
        try:
            client = harness.connect()
            client.push(add(0, "counters:get", {"name": "c"}, 0))
            first = (await client.next("Transition"))["modifications"][0]
            assert first["value"]["value"] == 0
            executions = coordinator.executions
            for i in range(3):  # notes: no live query read them
                await t.mutation("notes:add", {"author": "a", "body": str(i)})
            for _ in range(200):
                if coordinator.skipped:
                    break
                await asyncio.sleep(0.01)
            assert coordinator.skipped >= 1
            assert coordinator.executions == executions
            await t.mutation("counters:increment", {"name": "c"})  # this one it read
            moved = (await client.next("Transition"))["modifications"][0]
            assert moved["value"]["value"] == 1
            # another process's commit: this process learns of it by a wake-up (PostgreSQL's
            # notification), and reads the log for it
            await other.run_mutation("counters:increment", {"name": "c"})
            coordinator.wake()
            moved = (await client.next("Transition"))["modifications"][0]
            assert moved["value"]["value"] == 2
        finally:
            for task in harness.tasks:
                task.cancel()
            await asyncio.gather(*harness.tasks, return_exceptions=True)
            await coordinator.stop()
            await other_store.close()


async def test_writers_that_each_read_two_hot_documents_all_finish(basic: TestBackend) -> None:
    """Lines per document do not send callers back and forth between two hot documents."""
    engine = basic.engine
    ids = [await basic.mutation("counters:create", {"name": name}) for name in ("a", "b")]

    def bump(target: str) -> Any:
        async def body(txn: Transaction) -> None:
            docs = [await txn.get(doc_id, system=True) for doc_id in ids]
            mine = next(d for d in docs if d is not None and d["_id"] == target)
            await txn.patch(target, {"value": mine["value"] + 1}, system=True)

        return body

    await asyncio.gather(
        *(engine.write(bump(ids[i % 2]), function_path="t:bump") for i in range(40))
    )
    assert await _counter(basic, "a") + await _counter(basic, "b") == 40


async def test_a_batch_of_commits_keeps_each_one_s_timestamp_rows_and_outcome(
    basic: TestBackend,
) -> None:
    """Commits queued while the committer is busy go in one batch (on PostgreSQL one statement
    for all of them): each keeps its own timestamp, commit row, log rows and remembered answer,
    and a resend of any of them is answered from its own outcome."""
    engine = basic.engine
    store = engine.store
    start = await store.latest_ts()
    batches_before = store.commit_stats.batches
    store._busy = True  # the committer is busy: what comes meanwhile waits in its queue
    try:
        calls = [
            asyncio.create_task(
                engine.run_mutation(
                    "notes:add", {"author": f"a{k}", "body": str(k)}, request=("batch", k)
                )
            )
            for k in range(5)
        ]
        for _ in range(500):
            if len(store._queue) == 5:
                break
            await asyncio.sleep(0.01)
        assert len(store._queue) == 5
    finally:
        store._drainer = asyncio.create_task(store._drain())
    results = await asyncio.gather(*calls)
    assert store.commit_stats.batches == batches_before + 1

    stamps = [r.ts for r in results]
    assert len(set(stamps)) == 5
    assert min(stamps) > start
    assert await store.latest_ts() == max(stamps)
    records = await store.commits_after(start)
    assert sorted(stamps) == [r.ts for r in records]
    assert all(r.function_path == "notes:add" for r in records)
    async with store.mutation() as snap:
        for k, result in enumerate(results):
            found = await snap.get(result.value)
            assert found is not None
            assert found[1]["author"] == f"a{k}"
            stored = await snap.find_outcome("batch", k)
            assert stored is not None
            assert stored.ts == result.ts
    report = await verify_log(store)
    assert report.difference is None
    assert report.commits >= 5
    again = await engine.run_mutation(
        "notes:add", {"author": "x", "body": "x"}, request=("batch", 3)
    )
    assert again.replayed
    assert again.value == results[3].value
    assert again.ts == results[3].ts


async def test_a_commit_after_another_process_s_commit_on_other_documents_does_not_retry(
    basic: TestBackend,
) -> None:
    """Another process committed since the newest commit this one knows: the commit's guard
    fails, the other's write sets are read, nothing met, and it is written, with no retry."""
    engine = basic.engine
    await basic.mutation("counters:create", {"name": "mine"})
    await basic.mutation("counters:create", {"name": "theirs"})
    async with _other_process(basic) as other:
        theirs = await other.run_mutation("counters:increment", {"name": "theirs"})
        retries = engine.retries
        reads = engine.store.commit_stats.foreign_reads
        mine = await engine.run_mutation("counters:increment", {"name": "mine"})
        assert engine.retries == retries
        assert engine.store.commit_stats.foreign_reads == reads + 1
        assert mine.ts > theirs.ts
        assert engine.store.write_sets_between(theirs.ts - 1, mine.ts) is not None
        assert await _counter(basic, "mine") == 1
        assert await _counter(basic, "theirs") == 1


def _pending(*ids: str) -> PendingCommit:
    return PendingCommit(
        snapshot_ts=None,
        read_set=ReadSet(),
        write_set=WriteSet(ids=set(ids)),
        write_set_json="{}",
        rows=SqlRows(),
        log=[],
        now_ns=0,
        function_path=None,
        identity=None,
        outcome=None,
        fence=None,
    )


def test_one_statement_never_carries_two_commits_of_one_document() -> None:
    """A statement cannot update one row twice: a batch whose members write one document is
    refused before anything is sent (the committer then writes them one by one)."""
    assert pg_batch_params([_pending("a"), _pending("b")], [1, 2], "c")["commit_ts"] == [1, 2]
    with pytest.raises(OverlappingWrites):
        pg_batch_params([_pending("a", "b"), _pending("b")], [1, 2], "c")
