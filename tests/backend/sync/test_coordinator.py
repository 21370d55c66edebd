"""Which subscriptions the coordinator shares: only those whose effective query is the same."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.testing import TestBackend
from backend.udf.app import App, load_app
from tests.backend.sync.test_session import Harness, add, sync_harness


@functools.cache
def chat_app() -> App:
    return load_app("tests.apps.chat.schema", "tests.apps.chat.functions")


@pytest.fixture
async def chat(database_url: str | None) -> AsyncIterator[Harness]:
    async with sync_harness(database_url, chat_app()) as harness:
        yield harness


FIRST_PAGE = {"paginationOpts": {"numItems": 5, "cursor": None, "id": -1}}


async def send(t: TestBackend, n: int) -> list[str]:
    return [await t.mutation("messages:send", {"author": "a", "body": f"m{i}"}) for i in range(n)]


async def test_a_second_subscriber_gets_a_fresh_first_page_not_the_grown_one(
    chat: Harness,
) -> None:
    first = chat.connect("first")
    first.push(add(0, "messages:list", FIRST_PAGE, 0))
    empty = (await first.next("Transition"))["modifications"][0]
    assert empty["value"]["page"] == []
    assert empty["value"]["isDone"] is True
    await send(chat.t, 7)
    grown: dict[str, Any] = {}
    while len(grown.get("page", [])) < 7:  # the first page keeps its (open) end and grows
        grown = (await first.next("Transition"))["modifications"][0]["value"]
    assert grown["isDone"] is True

    second = chat.connect("second")
    second.push(add(3, "messages:list", FIRST_PAGE, 0))
    fresh = (await second.next("Transition"))["modifications"][0]
    assert [m["body"] for m in fresh["value"]["page"]] == ["m6", "m5", "m4", "m3", "m2"]
    assert fresh["value"]["isDone"] is False
    assert fresh["journal"] == fresh["value"]["continueCursor"]
    assert chat.coordinator.query_count == 2
    # one-shot, with the same arguments: the same fresh page
    once = await chat.t.query("messages:list", FIRST_PAGE)
    assert [m["_id"] for m in once["page"]] == [m["_id"] for m in fresh["value"]["page"]]


async def test_subscribers_with_the_same_journal_still_share_one_query(chat: Harness) -> None:
    await send(chat.t, 7)
    clients = [chat.connect(f"c{i}") for i in range(3)]
    pages = []
    for client in clients:
        client.push(add(0, "messages:list", FIRST_PAGE, 0))
        pages.append((await client.next("Transition"))["modifications"][0])
    assert chat.coordinator.query_count == 1
    assert len({p["journal"] for p in pages}) == 1
    before = chat.coordinator.executions
    await send(chat.t, 1)
    for client in clients:
        page = (await client.next("Transition"))["modifications"][0]["value"]["page"]
        assert len(page) == 6  # the new message joins the top of every copy of the page
    assert chat.coordinator.executions == before + 1


async def test_a_resubscription_with_a_journal_shares_with_the_live_page(chat: Harness) -> None:
    await send(chat.t, 7)
    first = chat.connect("first")
    first.push(add(0, "messages:list", FIRST_PAGE, 0))
    page = (await first.next("Transition"))["modifications"][0]
    again = chat.connect("again")  # a client back from a reconnect sends the journal it had
    again.push(
        {
            "type": "ModifyQuerySet",
            "baseVersion": 0,
            "newVersion": 1,
            "modifications": [
                {
                    "type": "Add",
                    "queryId": 9,
                    "udfPath": "messages:list",
                    "args": [FIRST_PAGE],
                    "journal": page["journal"],
                }
            ],
        }
    )
    resumed = (await again.next("Transition"))["modifications"][0]
    assert resumed["value"] == page["value"]
    assert chat.coordinator.query_count == 1


async def test_a_shared_query_that_starts_reading_auth_is_split_per_identity(
    chat: Harness,
) -> None:
    alice = await chat.t.sign_up("alice@example.com", "correct horse battery")
    bob = await chat.t.sign_up("bob@example.com", "correct horse battery")
    clients = []
    for user in (alice, bob):
        client = chat.connect(user.email)
        token = f"good:{user.user_id}:{user.session_id}"
        client.push({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0})
        client.push(add(0, "messages:latest", {}, 0))
        assert (await client.next("Transition"))["modifications"][0]["value"] is None
        clients.append(client)
    assert chat.coordinator.query_count == 1  # it read no auth: one query for both

    await chat.t.mutation("messages:send", {"author": "a", "body": "private: hi"})
    seen = [(await c.next("Transition"))["modifications"][0]["value"] for c in clients]
    assert seen == [f"private, for {alice.user_id}", f"private, for {bob.user_id}"]
    assert chat.coordinator.query_count == 2
