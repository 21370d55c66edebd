"""The port of Convex's http demo (``tests/apps/http_demo``): messages posted over an HTTP
action, read back by author through an exact and a prefix route, and pushed to a subscriber
of the chat, on both databases."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest

from backend.udf.app import App, load_app
from tests.backend.sync.test_session import Harness, add, sync_harness


@functools.cache
def demo_app() -> App:
    return load_app("tests.apps.http_demo.schema", "tests.apps.http_demo.functions")


@pytest.fixture
async def chat(database_url: str | None) -> AsyncIterator[Harness]:
    async with sync_harness(database_url, demo_app()) as harness:
        yield harness


async def test_a_message_posted_over_http_reaches_the_chat_live(chat: Harness) -> None:
    t = chat.t
    reader = chat.connect("reader")
    reader.push(add(0, "messages:list", {}, 0))
    assert (await reader.next("Transition"))["modifications"][0]["value"] == []
    answer = await t.fetch(
        "/postMessage",
        method="POST",
        json={"author": "User 123", "body": "Hello world"},
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200
    assert answer.content == b""
    pushed = (await reader.next("Transition"))["modifications"][0]["value"]
    assert [(m["author"], m["body"]) for m in pushed] == [
        ("User 123", "Sent via HTTP action: Hello world")
    ]


async def test_messages_read_by_author_by_query_header_and_path(chat: Harness) -> None:
    t = chat.t
    await t.mutation("messages:send", {"body": "one", "author": "User 123"})
    await t.mutation("messages:send", {"body": "two", "author": "User 234"})
    await t.fetch("/postMessage", method="POST", json={"author": "User 123", "body": "three"})
    expected = [
        {"body": "one", "author": "User 123"},
        {"body": "Sent via HTTP action: three", "author": "User 123"},
    ]
    by_query = await t.fetch("/getMessagesByAuthor?authorNumber=123")
    assert by_query.headers["content-type"] == "application/json"
    assert by_query.json() == expected
    by_header = await t.fetch("/getMessagesByAuthor", headers={"authorNumber": "123"})
    assert by_header.json() == expected
    by_path = await t.fetch("/getAuthorMessages/123")
    assert by_path.json() == expected
    assert (await t.fetch("/getAuthorMessages/234")).json() == [
        {"body": "two", "author": "User 234"}
    ]
    missing = await t.fetch("/getMessagesByAuthor")
    assert missing.status_code == 400
    assert missing.text == "Did not specify authorNumber as query param or header"
    assert (await t.fetch("/getMessagesByAuthor", method="POST")).status_code == 404
