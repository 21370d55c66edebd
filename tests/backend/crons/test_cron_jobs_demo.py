"""The port of Convex's cron-jobs demo (``tests/apps/cron_jobs``): messages sent by one client,
cleared every minute by a cron, the clearing pushed live to a subscriber, on both databases."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.crons import jobs
from backend.udf.app import App, load_app
from tests.backend.sync.test_session import Harness, add, sync_harness


@functools.cache
def demo_app() -> App:
    return load_app("tests.apps.cron_jobs.schema", "tests.apps.cron_jobs.functions")


@pytest.fixture
async def chat(database_url: str | None) -> AsyncIterator[Harness]:
    async with sync_harness(database_url, demo_app()) as harness:
        yield harness


async def bodies(client: Any) -> list[str]:
    value = (await client.next("Transition"))["modifications"][0]["value"]
    return [m["body"] for m in value]


async def test_the_minute_cron_clears_the_chat_and_the_subscriber_sees_it(chat: Harness) -> None:
    t = chat.t
    assert await t.run_crons() == 1  # deployed: the interval's first tick is now
    reader = chat.connect("reader")
    reader.push(add(0, "messages:list", {}, 0))
    assert await bodies(reader) == []
    for body in ("hello", "world"):
        await t.mutation("messages:send", {"body": body, "author": "User 1"})
    seen = await bodies(reader)
    while seen != ["hello", "world"]:
        seen = await bodies(reader)
    t.clock.advance(seconds=59)
    assert await t.run_crons() == 0
    t.clock.advance(seconds=1)
    assert await t.run_crons() == 1
    assert await bodies(reader) == []  # pushed: the cron's commit re-ran the subscription
    (cron,) = (await t.run(lambda ctx: jobs.stored_crons(ctx.db))).values()
    assert cron["name"] == "clear messages table"
    assert cron["function"] == "messages:clearAll"
    assert cron["schedule"] == {"type": "interval", "seconds": 60}


async def test_the_clearing_function_is_internal(chat: Harness) -> None:
    from backend.errors import ConvexError

    with pytest.raises(ConvexError) as refused:
        await chat.t.engine.run_mutation("messages:clearAll", {})  # as a client calls
    assert refused.value.code == "NOT_FOUND"
