"""The engine through the harness, on SQLite and PostgreSQL: functions, writes, limits, errors."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.engine import FunctionFailed, RetryPolicy
from backend.errors import ConvexError
from backend.storage.store import RetryableConflict
from backend.storage.tables import commits, documents, log
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from backend.transactions.limits import Limits
from backend.transactions.transaction import Transaction
from tests.conftest import basic_app


async def _counts(t: TestBackend) -> tuple[int, int, int]:
    async with t.engine.store.engine.connect() as conn:
        return (
            (await conn.execute(select(func.count()).select_from(commits))).scalar_one(),
            (await conn.execute(select(func.count()).select_from(log))).scalar_one(),
            (await conn.execute(select(func.count()).select_from(documents))).scalar_one(),
        )


async def _verified(t: TestBackend) -> None:
    report = await verify_log(t.engine.store, t.engine.schema)
    assert report.ok, report.difference


async def test_fifty_concurrent_increments_all_succeed_and_count_exactly(
    basic: TestBackend,
) -> None:
    await basic.mutation("counters:create", {"name": "c"})
    results = await asyncio.gather(
        *(basic.mutation("counters:increment", {"name": "c"}) for _ in range(50))
    )
    assert sorted(results) == list(range(1, 51))
    counter = await basic.query("counters:get", {"name": "c"})
    assert counter["value"] == 50
    await _verified(basic)


async def test_commit_timestamps_strictly_increase_in_commit_order(basic: TestBackend) -> None:
    await basic.mutation("counters:create", {"name": "c"})
    stamps = []
    for _ in range(5):
        stamps.append((await basic.mutation_result("counters:increment", {"name": "c"})).ts)
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 5
    async with basic.engine.store.engine.connect() as conn:
        logged = [r.ts for r in (await conn.execute(select(commits.c.ts).order_by(commits.c.ts)))]
    assert logged[-5:] == stamps


async def test_a_mutation_that_raises_after_writing_leaves_no_trace(basic: TestBackend) -> None:
    await basic.mutation("counters:create", {"name": "c"})
    before = await _counts(basic)
    with pytest.raises(ConvexError) as info:
        await basic.mutation("counters:increment_then_fail", {"name": "c"})
    assert info.value.data == {"code": "BOOM", "message": "failed on purpose", "detail": [1, 2]}
    assert await _counts(basic) == before
    assert (await basic.query("counters:get", {"name": "c"}))["value"] == 0
    await _verified(basic)


async def test_an_unexpected_exception_is_an_internal_error_with_detail_only_in_dev(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, dev_mode=False, app=basic_app()) as t:
        with pytest.raises(FunctionFailed) as info:
            await t.mutation("counters:crash", {})
        assert info.value.public_message == "Server Error"
        assert (await _counts(t))[0] == 0
    async with TestBackend(database_url, dev_mode=True, app=basic_app()) as t:
        with pytest.raises(FunctionFailed) as info:
            await t.mutation("counters:crash", {})
        assert "ZeroDivisionError: oops" in info.value.public_message
        assert "counters.py:" in info.value.public_message


@pytest.mark.parametrize(
    ("path", "args", "code", "fragment"),
    [
        ("counters:create", {"name": 5}, "INVALID_ARGUMENT", "name"),
        ("counters:create", {}, "INVALID_ARGUMENT", "name"),
        ("counters:create", {"name": "a", "extra": 1}, "INVALID_ARGUMENT", "extra"),
        ("counters:create", [], "INVALID_ARGUMENT", "object"),
        ("counters:nope", {}, "NOT_FOUND", "counters:nope"),
        ("nothing", {}, "NOT_FOUND", "nothing:default"),
        ("counters:bump", {"name": "a"}, "NOT_FOUND", "counters:bump"),  # internal
        ("counters:get", {"name": "a"}, "INVALID_ARGUMENT", "query"),  # wrong kind
        (
            "notes:add",
            {"author": "a", "body": "b", "priority": "urgent"},
            "INVALID_ARGUMENT",
            "priority",
        ),
    ],
)
async def test_bad_calls_are_coded_errors_and_write_nothing(
    basic: TestBackend, path: str, args: Any, code: str, fragment: str
) -> None:
    with pytest.raises(ConvexError) as info:
        await basic.engine.run_mutation(path, args)  # as a client calls (the harness may
    assert info.value.code == code  # call internal functions)
    assert fragment in info.value.message
    assert await _counts(basic) == (0, 0, 0)


async def test_schema_violations_name_the_field_and_write_nothing(basic: TestBackend) -> None:
    async def write(ctx: Any) -> None:
        await ctx.db.insert("notes", {"author": "a", "body": "b"})
        await ctx.db.insert("notes", {"author": "a", "body": 7})

    with pytest.raises(ConvexError) as info:
        await basic.run(write)
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.data["path"] == "body"
    assert await _counts(basic) == (0, 0, 0)

    async def nested(ctx: Any) -> None:
        await ctx.db.insert("notes", {"author": "a", "body": "b", "meta": {"x": "not an int"}})

    with pytest.raises(ConvexError) as info:
        await basic.run(nested)
    assert info.value.data["path"] == "meta.x"

    async def wrong_id(ctx: Any) -> None:
        note = await ctx.db.insert("notes", {"author": "a", "body": "b"})
        await ctx.db.insert("notes", {"author": "a", "body": "b", "counter": note})

    with pytest.raises(ConvexError) as info:
        await basic.run(wrong_id)
    assert info.value.data["path"] == "counter"


@pytest.mark.parametrize(
    "body",
    [
        lambda ctx: ctx.db.query("missing").collect(),
        lambda ctx: ctx.db.query("notes").with_index("by_nothing").collect(),
        lambda ctx: (
            ctx.db.query("notes")
            .with_index("by_author", lambda q: q.eq("priority", "low"))
            .collect()
        ),
        lambda ctx: ctx.db.get("not-an-id"),
        lambda ctx: ctx.db.insert("_nope", {}),
    ],
)
async def test_unknown_tables_indexes_and_ids_are_invalid_arguments(
    basic: TestBackend, body: Any
) -> None:
    with pytest.raises(ConvexError) as info:
        await basic.run(body)
    assert info.value.code == "INVALID_ARGUMENT"


async def test_app_functions_cannot_reach_system_tables(basic: TestBackend) -> None:
    await basic.mutation("counters:create", {"name": "c"})
    await basic.mutation("counters:schedule_bump", {"name": "c", "seconds": 60})
    with pytest.raises(ConvexError) as info:
        await basic.query("notes:peek_system", {})
    assert info.value.code == "INVALID_ARGUMENT"


async def test_values_over_the_limits_are_refused_and_write_nothing(
    database_url: str | None,
) -> None:
    limits = Limits(max_document_bytes=2_000, max_args_bytes=5_000, max_docs_written=3)
    async with TestBackend(database_url, limits=limits, app=basic_app()) as t:
        with pytest.raises(ConvexError) as info:
            await t.mutation("notes:big", {"size": 3_000})
        assert info.value.code == "LIMIT_EXCEEDED"
        with pytest.raises(ConvexError) as info:
            await t.mutation("counters:create", {"name": "x" * 6_000})
        assert info.value.code == "LIMIT_EXCEEDED"

        async def many(ctx: Any) -> None:
            for i in range(4):
                await ctx.db.insert("counters", {"name": str(i), "value": i})

        with pytest.raises(ConvexError) as info:
            await t.run(many)
        assert info.value.code == "LIMIT_EXCEEDED"
        assert await _counts(t) == (0, 0, 0)


async def test_read_limit_stops_a_runaway_scan(database_url: str | None) -> None:
    async with TestBackend(database_url, limits=Limits(max_docs_read=20), app=basic_app()) as t:

        async def fill(ctx: Any) -> None:
            for i in range(25):
                await ctx.db.insert("notes", {"author": "a", "body": str(i)})

        await t.run(fill)
        with pytest.raises(ConvexError) as info:
            await t.query("notes:by_author", {"author": "a", "limit": 25})
        assert info.value.code == "LIMIT_EXCEEDED"


async def test_documents_crud_and_system_fields(basic: TestBackend) -> None:
    async def crud(ctx: Any) -> dict[str, Any]:
        note = await ctx.db.insert("notes", {"author": "a", "body": "one", "tags": ["x"]})
        await ctx.db.patch(note, {"body": "two"})
        first = await ctx.db.get(note)
        await ctx.db.replace(note, {"author": "b", "body": "three"})
        second = await ctx.db.get(note)
        gone = await ctx.db.insert("notes", {"author": "c", "body": "x"})
        await ctx.db.delete(gone)
        return {"first": first, "second": second, "gone": await ctx.db.get(gone)}

    out = await basic.run(crud)
    assert out["first"]["body"] == "two"
    assert out["first"]["tags"] == ["x"]
    assert out["second"]["author"] == "b"
    assert "tags" not in out["second"]
    assert out["second"]["_id"] == out["first"]["_id"]
    assert out["second"]["_creationTime"] == out["first"]["_creationTime"]
    assert out["gone"] is None
    await _verified(basic)

    with pytest.raises(ConvexError) as info:
        await basic.run(lambda ctx: ctx.db.patch(out["first"]["_id"], {"_id": "x"}))
    assert info.value.code == "INVALID_ARGUMENT"


async def test_index_ranges_order_filter_take_first_unique(basic: TestBackend) -> None:
    async def fill(ctx: Any) -> None:
        for i, (author, priority) in enumerate(
            [("ann", "low"), ("ann", "high"), ("bob", "low"), ("ann", "low"), ("cat", "high")]
        ):
            await ctx.db.insert("notes", {"author": author, "body": str(i), "priority": priority})

    await basic.run(fill)

    async def reads(ctx: Any) -> dict[str, Any]:
        q = ctx.db.query
        return {
            "ann": [
                d["body"] for d in await q("notes").with_index("by_author", author="ann").collect()
            ],
            "ann_low": [
                d["body"]
                for d in await q("notes")
                .with_index("by_author", lambda r: r.eq("author", "ann").eq("priority", "low"))
                .collect()
            ],
            "after_ann": [
                d["author"]
                for d in await q("notes")
                .with_index("by_author", lambda r: r.gt("author", "ann"))
                .collect()
            ],
            "upto_bob": [
                d["author"]
                for d in await q("notes")
                .with_index("by_author", lambda r: r.lte("author", "bob"))
                .collect()
            ],
            "desc": [d["body"] for d in await q("notes").order("desc").take(2)],
            "filtered": [
                d["body"]
                for d in await q("notes").filter(lambda d: d["priority"] == "high").collect()
            ],
            "first": (await q("notes").first())["body"],
            "iter": [d["body"] async for d in q("notes")],
            "unique_none": await q("notes").with_index("by_author", author="zed").unique(),
        }

    out = await basic.run(reads)
    assert out["ann"] == ["1", "0", "3"]  # by priority ("high" < "low"), then creation
    assert out["ann_low"] == ["0", "3"]
    assert out["after_ann"] == ["bob", "cat"]
    assert out["upto_bob"] == ["ann", "ann", "ann", "bob"]
    assert out["desc"] == ["4", "3"]
    assert out["filtered"] == ["1", "4"]
    assert out["first"] == "0"
    assert out["iter"] == ["0", "1", "2", "3", "4"]
    assert out["unique_none"] is None
    with pytest.raises(ConvexError):
        await basic.run(
            lambda ctx: ctx.db.query("notes").with_index("by_author", author="ann").unique()
        )


async def test_paginate_walks_every_row_once_while_rows_are_inserted(basic: TestBackend) -> None:
    async def fill(ctx: Any, start: int, n: int) -> None:
        for i in range(start, start + n):
            await ctx.db.insert("notes", {"author": "p", "body": f"{i:03}"})

    await basic.run(lambda ctx: fill(ctx, 0, 23))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await basic.query(
            "notes:page", {"paginationOpts": {"numItems": 5, "cursor": cursor, "id": 3}}
        )
        seen.extend(d["body"] for d in page["page"])
        assert isinstance(page["continueCursor"], str)
        cursor = page["continueCursor"]
        pages += 1
        if pages == 2:
            await basic.run(lambda ctx: fill(ctx, 100, 4))  # lands after the cursor
        if page["isDone"]:
            break
    assert seen == [f"{i:03}" for i in range(23)] + ["100", "101", "102", "103"]
    with pytest.raises(ConvexError) as info:
        await basic.query("notes:page", {"paginationOpts": {"numItems": 5, "cursor": "garbage"}})
    assert info.value.data["paginationError"] == "InvalidCursor"


async def test_queries_record_only_what_they_read(basic: TestBackend) -> None:
    async def fill(ctx: Any) -> None:
        for i in range(30):
            await ctx.db.insert("notes", {"author": "a", "body": str(i)})

    await basic.run(fill)
    result = await basic.engine.query_with_reads(
        "notes:by_author", {"author": "a", "limit": 3}, None
    )
    assert len(result.value) == 3
    (ranges,) = result.read_set.ranges.values()
    index = basic.engine.schema.index("notes", "by_author")
    inside = [index.key_of(d) for d in result.value]
    assert all(any(r.contains(k) for r in ranges) for k in inside)
    later = await basic.run(lambda ctx: ctx.db.query("notes").order("desc").first())
    assert later is not None
    assert not any(r.contains(index.key_of(later)) for r in ranges)
    assert result.used_auth is False
    who = await basic.engine.query_with_reads("notes:whoami", {}, None)
    assert who.used_auth is True


async def test_ctx_now_comes_from_the_injected_clock(basic: TestBackend) -> None:
    first = await basic.query("notes:now", {})
    basic.clock.advance(minutes=5)
    assert await basic.query("notes:now", {}) == first + 5 * 60 * 1000


async def test_identity_reaches_functions_only_with_a_live_session(basic: TestBackend) -> None:
    assert await basic.query("notes:whoami", {}) is None
    alice = await basic.sign_up("alice@example.com", "correct horse battery")
    assert await alice.query("notes:whoami", {}) == alice.user_id
    assert await basic.as_user(alice.user_id).query("notes:whoami", {}) is None  # no session
    basic.clock.advance(days=8)  # sessions expire
    assert await alice.query("notes:whoami", {}) is None


async def test_a_resent_request_is_answered_not_run_again(basic: TestBackend) -> None:
    await basic.mutation("counters:create", {"name": "c"})
    first = await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s1", 7))
    again = await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s1", 7))
    assert (again.value, again.ts, again.replayed) == (first.value, first.ts, True)
    other = await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s2", 7))
    assert other.value == 2


async def test_conflicts_are_retried_then_reported_with_nothing_written(basic: TestBackend) -> None:
    engine = basic.engine
    attempts = 0

    async def flaky(txn: Transaction) -> None:
        nonlocal attempts
        attempts += 1
        await txn.insert("counters", {"name": f"n{attempts}", "value": 0}, system=False)
        if attempts < 3:
            raise RetryableConflict("simulated")

    await engine.write(flaky)
    assert attempts == 3
    names = await basic.run(lambda ctx: ctx.db.query("counters").collect())
    assert [c["name"] for c in names] == ["n3"]

    engine.retry = RetryPolicy(max_attempts=2, base_delay=0.0)

    async def hopeless(txn: Transaction) -> None:
        await txn.insert("counters", {"name": "never", "value": 0}, system=False)
        raise RetryableConflict("simulated")

    with pytest.raises(ConvexError) as info:
        await engine.write(hopeless)
    assert info.value.code == "CONFLICT"
    assert [c["name"] for c in await basic.run(lambda ctx: ctx.db.query("counters").collect())] == [
        "n3"
    ]


async def test_remembered_outcomes_are_forgotten_after_the_window(basic: TestBackend) -> None:
    from backend.http.app import OUTCOME_WINDOW, housekeeping

    await basic.mutation("counters:create", {"name": "c"})
    await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s", 1))
    basic.clock.advance(OUTCOME_WINDOW + timedelta(seconds=1))
    await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s", 2))
    task = asyncio.create_task(housekeeping(basic.engine, every=0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    kept = await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s", 2))
    assert kept.replayed is True  # inside the window: still answered from memory
    late = await basic.engine.run_mutation("counters:increment", {"name": "c"}, request=("s", 1))
    assert late.replayed is False  # past it: a resend this late runs again


async def test_a_stored_outcome_answers_only_the_caller_who_made_it(basic: TestBackend) -> None:
    from backend.udf.context import Identity

    engine = basic.engine
    await basic.mutation("counters:create", {"name": "c"})
    ada = Identity("user-ada", "session-ada", issuer="https://app.example")
    renewed = Identity("user-ada", "session-ada", issuer="https://app.example", claims={"x": 1})
    others = [
        Identity("user-bob", "session-bob", issuer="https://app.example"),
        Identity("user-ada", "another-session", issuer="https://app.example"),
        Identity("user-ada", "session-ada", issuer="https://elsewhere.example"),
        None,
    ]
    first = await engine.run_mutation(
        "counters:increment", {"name": "c"}, ada, request=("shared", 1)
    )
    # the same session with a renewed token is the same caller: the resend is a replay
    again = await engine.run_mutation(
        "counters:increment", {"name": "c"}, renewed, request=("shared", 1)
    )
    assert (again.value, again.ts, again.replayed) == (first.value, first.ts, True)
    for other in others:
        with pytest.raises(ConvexError) as refused:
            await engine.run_mutation(
                "counters:increment", {"name": "c"}, other, request=("shared", 1)
            )
        assert refused.value.code == "FORBIDDEN"
    assert (await basic.query("counters:get", {"name": "c"}))["value"] == 1
    # nobody's outcome answers nobody (there is no one to tell apart)
    anonymous = await engine.run_mutation(
        "counters:increment", {"name": "c"}, None, request=("anon", 1)
    )
    replay = await engine.run_mutation(
        "counters:increment", {"name": "c"}, None, request=("anon", 1)
    )
    assert replay.replayed
    assert replay.value == anonymous.value == 2
