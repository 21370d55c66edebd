"""Log compaction: history before the horizon goes, the replay (and so verify-log) stays."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from backend.cli import main as cli_main
from backend.storage.compact import BATCH_STATEMENTS, compact_log, horizon_for
from backend.storage.store import Store
from backend.storage.tables import documents, index_entries, log
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from tests.conftest import BASIC_FUNCTIONS, BASIC_SCHEMA, basic_app
from tests.support.query_plans import assert_reads_by_index, fill_unanalyzed, plan_of

LogRow = tuple[int, int, str, str | None]  # ts, seq, doc id, value


async def _log_rows(store: Store) -> list[LogRow]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(log.c.ts, log.c.seq, log.c.doc_id, log.c.value).order_by(log.c.ts, log.c.seq)
        )
        return [(r.ts, r.seq, r.doc_id, r.value) for r in rows]


async def _projections(store: Store) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    async with store.engine.connect() as conn:
        docs = {tuple(r) for r in await conn.execute(select(documents))}
        keys = {
            (r.index_name, bytes(r.key), r.doc_id)
            for r in await conn.execute(select(index_entries))
        }
    return docs, keys


def _compacted(rows: list[LogRow], horizon: int) -> list[LogRow]:
    """The rule, stated plainly: per document, the newest row at or before the horizon (unless
    it is a deletion with nothing after it) and every row after the horizon."""
    newest: dict[str, LogRow] = {}
    later = {doc_id for ts, _, doc_id, _ in rows if ts > horizon}
    for row in rows:
        if row[0] <= horizon:
            newest[row[2]] = row  # rows are in commit order
    kept = {row for row in newest.values() if row[3] is not None or row[2] in later}
    return [row for row in rows if row[0] > horizon or row in kept]


async def _patch(t: TestBackend, doc_id: str, **fields: Any) -> None:
    await t.run(lambda ctx: ctx.db.patch(doc_id, fields))


async def _delete(t: TestBackend, doc_id: str) -> None:
    await t.run(lambda ctx: ctx.db.delete(doc_id))


async def _note(t: TestBackend, body: str, author: str = "a") -> str:
    return str(await t.mutation("notes:add", {"author": author, "body": body}))


async def _history(t: TestBackend) -> tuple[int, dict[str, str]]:
    """Commits on both sides of a horizon; returns the horizon and the documents by role."""
    docs = {name: await _note(t, name) for name in ("patched", "gone", "dies_later", "batched")}
    docs["untouched"] = await _note(t, "untouched")
    for i in range(5):
        await _patch(t, docs["patched"], body=f"patched {i}")
    await _patch(t, docs["gone"], author="b")
    await _patch(t, docs["gone"], priority="high")
    await _delete(t, docs["gone"])
    await _patch(t, docs["dies_later"], body="last version before the horizon")

    async def three_patches(ctx: Any) -> None:  # one commit, three log rows of one document
        for i in range(3):
            await ctx.db.patch(docs["batched"], {"body": f"batched {i}"})

    await t.run(three_patches)
    horizon = await t.engine.store.latest_ts()

    t.clock.advance(hours=1)
    for i in range(3):
        await _patch(t, docs["patched"], body=f"after {i}")
    await _delete(t, docs["dies_later"])
    docs["born_later"] = await _note(t, "born later")
    await _patch(t, docs["born_later"], body="born later, patched")
    docs["brief"] = await _note(t, "brief")
    await _delete(t, docs["brief"])
    return horizon, docs


@pytest.mark.parametrize("batch_docs", [1, 5000])
async def test_compaction_drops_history_before_the_horizon_and_keeps_the_replay(
    basic: TestBackend, batch_docs: int
) -> None:
    store = basic.engine.store
    horizon, docs = await _history(basic)
    before = await _log_rows(store)
    projections = await _projections(store)

    report = await compact_log(store, horizon_ts=horizon, batch_docs=batch_docs)

    after = await _log_rows(store)
    assert after == _compacted(before, horizon)
    assert report.horizon_ts == horizon
    # patched: 6 rows before the horizon, keeps 1; gone: all 4; dies_later: 1 of 2; batched: 3
    # of 4 (three in one commit); untouched: nothing
    assert report.rows_removed == len(before) - len(after) == 5 + 4 + 1 + 3
    assert report.documents_affected == 4
    assert [r for r in after if r[0] > horizon] == [r for r in before if r[0] > horizon]

    def rows_of(name: str) -> list[LogRow]:
        return [r for r in after if r[2] == docs[name]]

    assert rows_of("gone") == []
    dies_later = rows_of("dies_later")
    assert [r[0] <= horizon for r in dies_later] == [True, False]
    assert "last version before the horizon" in (dies_later[0][3] or "")
    assert dies_later[1][3] is None
    assert len(rows_of("untouched")) == len(rows_of("batched")) == 1
    assert "batched 2" in (rows_of("batched")[0][3] or "")
    assert [r[0] <= horizon for r in rows_of("patched")] == [True, False, False, False]

    assert await _projections(store) == projections
    verified = await verify_log(store, basic.engine.schema)
    assert verified.ok, verified.difference
    assert verified.log_rows == len(after)


async def test_compaction_is_idempotent(basic: TestBackend) -> None:
    store = basic.engine.store
    horizon, _ = await _history(basic)
    first = await compact_log(store, horizon_ts=horizon)
    rows = await _log_rows(store)
    again = await compact_log(store, horizon_ts=horizon)
    assert first.rows_removed > 0
    assert (again.rows_removed, again.documents_affected) == (0, 0)
    assert await _log_rows(store) == rows


async def test_a_horizon_past_the_newest_commit_is_capped_at_it(basic: TestBackend) -> None:
    store = basic.engine.store
    doc_id = await _note(basic, "v0")
    await _patch(basic, doc_id, body="v1")
    latest = await store.latest_ts()
    report = await compact_log(store, horizon_ts=latest + 10**18)
    assert (report.horizon_ts, report.rows_removed) == (latest, 1)
    assert (await verify_log(store, basic.engine.schema)).ok


async def test_writes_during_a_compaction_all_land(basic: TestBackend) -> None:
    store = basic.engine.store
    await basic.mutation("counters:create", {"name": "c"})
    notes = [await _note(basic, f"note {i}") for i in range(12)]
    for round_ in range(3):
        for doc_id in notes:
            await _patch(basic, doc_id, body=f"round {round_}")
    for doc_id in notes[:4]:
        await _delete(basic, doc_id)
    for _ in range(5):
        await basic.mutation("counters:increment", {"name": "c"})
    horizon = await store.latest_ts()
    before = await _log_rows(store)

    async def writes() -> None:
        await basic.mutation("counters:increment", {"name": "c"})
        await _patch(basic, notes[-1], body="during the compaction")
        await _note(basic, "new")

    compactions = asyncio.gather(  # two at once, in small batches, to interleave with writes
        compact_log(store, horizon_ts=horizon, batch_docs=2),
        compact_log(store, horizon_ts=horizon, batch_docs=3),
    )
    reports, _ = await asyncio.gather(compactions, asyncio.gather(*(writes() for _ in range(20))))

    counter: Any = await basic.query("counters:get", {"name": "c"})
    assert counter["value"] == 25
    assert len(await basic.query("notes:by_author", {"author": "a", "limit": 100})) == 8 + 20
    after = await _log_rows(store)
    assert [r for r in after if r[0] <= horizon] == [
        r for r in _compacted(before, horizon) if r[0] <= horizon
    ]
    assert len([r for r in after if r[0] > horizon]) == 20 * 3
    assert sum(r.rows_removed for r in reports) == len(before) - len(
        [r for r in after if r[0] <= horizon]
    )
    report = await verify_log(store, basic.engine.schema)
    assert report.ok, report.difference


def test_the_horizon_for_a_retention_window_is_counted_back_from_the_newest_commit() -> None:
    assert horizon_for(10**15, timedelta(days=7)) == 10**15 - 7 * 86_400 * 10**9
    assert horizon_for(5, timedelta(microseconds=1)) == 5 - 1000


async def test_compact_cli_on_a_sqlite_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with TestBackend(app=basic_app()) as t:  # a fresh SQLite file
        store = t.engine.store
        doc_id = await _note(t, "v0")
        await _patch(t, doc_id, body="v1")
        t.clock.advance(days=8)
        await _patch(t, doc_id, body="v2")
        await _patch(t, doc_id, body="v3")
        gone = await _note(t, "gone")
        rows = await _log_rows(store)
        monkeypatch.setenv("DATABASE_URL", store.url)
        monkeypatch.setenv("APP_SCHEMA", BASIC_SCHEMA)
        monkeypatch.setenv("APP_FUNCTIONS", BASIC_FUNCTIONS)

        with pytest.raises(SystemExit):
            await asyncio.to_thread(cli_main, ["compact", "--keep", "a week"])
        capsys.readouterr()

        assert await asyncio.to_thread(cli_main, ["compact", "--keep", "7d"]) == 0
        out = capsys.readouterr().out
        assert "removed 1 rows of 1 documents" in out  # v0 goes, v1 is the base of v2
        assert [r for r in await _log_rows(store) if r[2] == doc_id] == rows[1:4]

        await _delete(t, gone)
        latest = await store.latest_ts()
        assert await asyncio.to_thread(cli_main, ["compact", "--before-ts", str(latest)]) == 0
        out = capsys.readouterr().out
        assert f"at or before ts {latest}: removed 4 rows of 2 documents" in out
        assert [r[2] for r in await _log_rows(store)] == [doc_id]
        assert await asyncio.to_thread(cli_main, ["verify-log"]) == 0


async def test_every_batch_reads_the_log_by_its_index_with_no_statistics(
    basic: TestBackend,
) -> None:
    store = basic.engine.store
    await fill_unanalyzed(store, rows=40_000, docs=10_000)
    params = {"horizon": 30_000, "after": "doc1000100", "last": "doc1002100", "batch": 2000}
    for name, statement in BATCH_STATEMENTS.items():
        plan = await plan_of(store, statement, params)
        assert_reads_by_index(store, name, plan, aliases=("other",))
