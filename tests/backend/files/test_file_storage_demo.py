"""The port of Convex's file-storage demo (``tests/apps/file_storage``): an image uploaded to a
generated URL, sent as a message, and pushed to a subscriber with a URL that serves it, on both
databases."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest

from backend.errors import ConvexError
from backend.udf.app import App, load_app
from tests.backend.sync.test_session import Harness, add, sync_harness

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@functools.cache
def demo_app() -> App:
    return load_app("tests.apps.file_storage.schema", "tests.apps.file_storage.functions")


@pytest.fixture
async def chat(database_url: str | None) -> AsyncIterator[Harness]:
    async with sync_harness(database_url, demo_app()) as harness:
        yield harness


async def test_an_uploaded_image_is_pushed_with_a_url_that_serves_it(chat: Harness) -> None:
    t = chat.t
    reader = chat.connect("reader")
    reader.push(add(0, "messages:list", {}, 0))
    assert (await reader.next("Transition"))["modifications"][0]["value"] == []
    await t.mutation("messages:sendMessage", {"body": "look:", "author": "User 1"})
    await reader.next("Transition")

    # Step 1: a short-lived upload URL; step 2: POST the file; step 3: save its id
    post_url = await t.mutation("messages:generateUploadUrl")
    result = await t.fetch(post_url, method="POST", body=PNG, headers={"Content-Type": "image/png"})
    assert result.status_code == 200
    storage_id = result.json()["storageId"]
    await t.mutation("messages:sendImage", {"storageId": storage_id, "author": "User 1"})

    pushed = (await reader.next("Transition"))["modifications"][0]["value"]
    text, image = pushed
    assert (text["format"], text["body"], "url" in text) == ("text", "look:", False)
    assert (image["format"], image["body"], image["author"]) == ("image", storage_id, "User 1")
    served = await t.fetch(image["url"])
    assert served.status_code == 200
    assert served.content == PNG
    assert served.headers["content-type"] == "image/png"


async def test_send_image_takes_storage_ids_only(chat: Harness) -> None:
    t = chat.t
    await t.mutation("messages:sendMessage", {"body": "hi", "author": "User 1"})
    (message,) = await t.query("messages:list")
    with pytest.raises(ConvexError) as refused:
        await t.mutation("messages:sendImage", {"storageId": message["_id"], "author": "x"})
    assert refused.value.code == "INVALID_ARGUMENT"
