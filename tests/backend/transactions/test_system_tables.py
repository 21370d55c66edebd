"""``ctx.db.system``: app code reads ``_scheduled_functions`` in Convex's shape, read-only, live;
every other engine table stays out of reach; ``ctx.scheduler.cancel`` as in Convex. Through the
port of Convex's system-tables demo (``tests/apps/system_tables``), on both databases."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.runtime import to_ms
from backend.scheduler import TABLE
from backend.sync.coordinator import SyncCoordinator
from backend.system import READABLE_BY_APPS, system_schema
from backend.testing import TestBackend
from backend.udf.app import App, load_app
from tests.apps.system_tables.functions import probe
from tests.backend.sync.test_session import Harness, add, mutation


@functools.cache
def demo_app() -> App:
    return load_app("tests.apps.system_tables.schema", "tests.apps.system_tables.functions")


@pytest.fixture
async def demo(database_url: str | None) -> AsyncIterator[TestBackend]:
    probe.gate = None
    async with TestBackend(database_url, app=demo_app(), hold_scheduled=True) as t:
        yield t


async def stored_jobs(t: TestBackend) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.query(TABLE).collect())


async def test_the_admin_page_lists_scheduled_sends_in_convex_shape(demo: TestBackend) -> None:
    now = to_ms(demo.clock.now())
    job = await demo.mutation(
        "messages:scheduleMessage", {"delay": 10, "body": "later", "author": "User 1"}
    )
    (pending,) = await demo.query("admin:listScheduledSends")
    assert pending == {
        "_id": job,
        "_creationTime": pending["_creationTime"],
        "name": "messages:sendMessage",
        "args": [{"body": "later", "author": "User 1"}],
        "scheduledTime": now + 10_000,
        "state": {"kind": "pending"},
    }
    demo.clock.advance(seconds=10)
    assert await demo.run_scheduled() == 1
    (done,) = await demo.query("admin:listScheduledSends")
    assert done["state"] == {"kind": "success"}
    assert done["completedTime"] == now + 10_000
    assert await demo.query("probe:get", {"id": job}) == done
    assert await demo.query("probe:get_in", {"table": "_scheduled_functions", "id": job}) == done
    assert [m["body"] for m in await demo.query("messages:list")] == ["later"]


async def test_a_failed_job_carries_its_error_in_its_state(demo: TestBackend) -> None:
    job = await demo.mutation("probe:schedule", {"what": "fails"})
    await demo.run_scheduled()
    shown = await demo.query("probe:get", {"id": job})
    assert shown["state"] == {"kind": "failed", "error": "BROKEN: this always fails"}
    assert "completedTime" in shown


async def test_filters_order_and_pages_see_the_shape_not_the_stored_document(
    demo: TestBackend,
) -> None:
    first = await demo.mutation(
        "messages:scheduleMessage", {"delay": 0, "body": "a", "author": "x"}
    )
    second = await demo.mutation(
        "messages:scheduleMessage", {"delay": 60, "body": "b", "author": "x"}
    )
    await demo.run_scheduled()
    assert [j["_id"] for j in await demo.query("probe:by_kind", {"kind": "pending"})] == [second]
    assert [j["_id"] for j in await demo.query("probe:by_kind", {"kind": "success"})] == [first]
    page = await demo.query("probe:page", {"paginationOpts": {"numItems": 1, "cursor": None}})
    assert [j["_id"] for j in page["page"]] == [first]
    rest = await demo.query(
        "probe:page", {"paginationOpts": {"numItems": 5, "cursor": page["continueCursor"]}}
    )
    assert [j["_id"] for j in rest["page"]] == [second]
    assert rest["isDone"] is True
    with pytest.raises(ConvexError, match="has no index 'by_state'") as refused:
        await demo.query("probe:by_engine_index")  # the engine's own index, on its own layout
    assert refused.value.code == "INVALID_ARGUMENT"


async def test_the_engines_own_jobs_are_neither_listed_read_nor_cancelable(
    demo: TestBackend,
) -> None:
    await demo.sign_up("ada@example.com", "correct horse battery")  # queues a mail delivery
    (mail_job,) = await stored_jobs(demo)
    assert mail_job["name"] == "_system/mail:deliver"
    assert await demo.query("admin:listScheduledSends") == []
    assert await demo.query("probe:get", {"id": mail_job["_id"]}) is None
    with pytest.raises(ConvexError) as refused:
        await demo.mutation("admin:cancelMessage", {"jobId": mail_job["_id"]})
    assert refused.value.code == "NOT_FOUND"
    assert (await stored_jobs(demo))[0]["state"] == "pending"
    assert await demo.run_scheduled() == 1
    assert [m.to for m in demo.outbox] == ["ada@example.com"]


def test_the_allow_list_is_the_scheduled_functions_and_the_files() -> None:
    # Upload tokens (`_storage_uploads`) stay out: they are the engine's, as sessions are.
    assert set(READABLE_BY_APPS) == {"_scheduled_functions", "_storage"}
    assert set(system_schema().views) == set(READABLE_BY_APPS)


async def test_every_other_engine_table_is_refused_to_app_code(demo: TestBackend) -> None:
    ada = await demo.sign_up("ada@example.com", "correct horse battery")
    hidden = sorted(set(system_schema().tables) - set(READABLE_BY_APPS))
    assert {"_sessions", "_sensitive_grants", "_email_codes", "_audit_events"} <= set(hidden)
    assert {"_rate_limits", "_cron_jobs", "_users", "_accounts", "_storage_uploads"} <= set(hidden)
    for table in [*hidden, "_storage_of_nothing", "messages"]:
        with pytest.raises(ConvexError, match="unknown system table") as refused:
            await demo.query("probe:read", {"table": table})
        assert refused.value.code == "INVALID_ARGUMENT"
    # by id: a session, a user, an app document are not readable system documents
    message = await demo.run(
        lambda ctx: ctx.db.insert("messages", {"author": "a", "body": "b", "format": "text"})
    )
    for foreign in (ada.session_id, ada.user_id, message, "not-an-id"):
        with pytest.raises(ConvexError, match="not an id of a readable system table") as refused:
            await demo.query("probe:get", {"id": foreign})
        assert refused.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ConvexError, match="is not an id of '_scheduled_functions'"):
        await demo.query("probe:get_in", {"table": "_scheduled_functions", "id": ada.session_id})
    # and the ordinary ctx.db still refuses the scheduled functions themselves
    job = await demo.mutation("messages:scheduleMessage", {"delay": 5, "body": "b", "author": "a"})
    with pytest.raises(ConvexError, match="unknown table"):
        await demo.query("probe:read_directly", {"table": "_scheduled_functions"})
    with pytest.raises(ConvexError, match="is not a document id"):
        await demo.query("probe:get_directly", {"id": job})


async def test_cancel_stops_a_pending_job_and_leaves_a_finished_one(demo: TestBackend) -> None:
    job = await demo.mutation("messages:scheduleMessage", {"delay": 5, "body": "no", "author": "a"})
    done = await demo.mutation(
        "messages:scheduleMessage", {"delay": 0, "body": "yes", "author": "a"}
    )
    await demo.run_scheduled()
    await demo.mutation("admin:cancelMessage", {"jobId": job})
    await demo.mutation("admin:cancelMessage", {"jobId": done})  # finished: left as it is
    demo.clock.advance(seconds=5)
    assert await demo.run_scheduled() == 0
    canceled = await demo.query("probe:get", {"id": job})
    assert canceled["state"] == {"kind": "canceled"}
    assert canceled["completedTime"] == to_ms(demo.clock.now()) - 5_000  # when it was canceled
    assert (await demo.query("probe:get", {"id": done}))["state"] == {"kind": "success"}
    assert [m["body"] for m in await demo.query("messages:list")] == ["yes"]


async def test_a_running_action_canceled_stays_canceled_when_it_ends(demo: TestBackend) -> None:
    probe.gate = asyncio.Event()
    job = await demo.mutation("probe:schedule", {"what": "waits"})
    running = asyncio.create_task(demo.run_scheduled())
    for _ in range(500):
        if (await demo.query("probe:get", {"id": job}))["state"]["kind"] == "inProgress":
            break
        await asyncio.sleep(0.01)
    await demo.mutation("probe:cancel", {"id": job})
    probe.gate.set()
    await running
    assert (await demo.query("probe:get", {"id": job}))["state"] == {"kind": "canceled"}


async def test_cancel_refuses_an_id_that_is_not_a_scheduled_function(demo: TestBackend) -> None:
    ada = await demo.sign_up("ada@example.com", "correct horse battery")
    session = str(ada.session_id)
    before = await demo.run(lambda ctx: ctx.db.get(session))
    for foreign in (ada.session_id, ada.user_id, "nonsense"):
        with pytest.raises(ConvexError, match="is not a scheduled function's id") as refused:
            await demo.mutation("probe:cancel", {"id": foreign})
        assert refused.value.code == "INVALID_ARGUMENT"
    assert await demo.run(lambda ctx: ctx.db.get(session)) == before
    with pytest.raises(ConvexError) as invalid:  # the demo's own validator says so first
        await demo.mutation("admin:cancelMessage", {"jobId": ada.session_id})
    assert invalid.value.code == "INVALID_ARGUMENT"


async def test_jobs_stored_by_an_earlier_version_read_in_the_new_shape(
    demo: TestBackend,
) -> None:
    # the layout jobs have always been stored in (a flat state, args as an object, an error
    # field, a cancellation without a completion time): no migration is needed to read them
    ids = await demo.run(
        lambda ctx: asyncio.gather(
            ctx.db.insert(
                TABLE,
                {
                    "name": "messages:sendMessage",
                    "args": {"body": "old", "author": "a"},
                    "scheduledTime": 1.0,
                    "state": "failed",
                    "completedTime": 2.0,
                    "error": "Server Error",
                },
            ),
            ctx.db.insert(
                TABLE,
                {
                    "name": "messages:sendMessage",
                    "args": {},
                    "scheduledTime": 1.0,
                    "state": "canceled",
                },
            ),
        )
    )
    failed, canceled = [await demo.query("probe:get", {"id": i}) for i in ids]
    assert failed["state"] == {"kind": "failed", "error": "Server Error"}
    assert failed["args"] == [{"body": "old", "author": "a"}]
    assert canceled["state"] == {"kind": "canceled"}
    assert "completedTime" not in canceled


async def test_a_subscription_over_scheduled_functions_sees_each_change_of_state(
    demo: TestBackend,
) -> None:
    coordinator = SyncCoordinator(demo.engine, catch_up_interval=0.2)
    await coordinator.start()
    harness = Harness(demo, coordinator)
    try:
        admin = harness.connect("admin")
        admin.push(add(0, "admin:listScheduledSends", {}, 0))
        assert (await admin.next("Transition"))["modifications"][0]["value"] == []
        admin.push(
            mutation(0, "messages:scheduleMessage", {"delay": 30, "body": "hi", "author": "a"})
        )
        await admin.next("MutationResponse")
        seen = (await admin.next("Transition"))["modifications"][0]["value"]
        assert [j["state"]["kind"] for j in seen] == ["pending"]
        demo.clock.advance(seconds=30)
        await demo.run_scheduled()
        seen = (await admin.next("Transition"))["modifications"][0]["value"]
        assert [j["state"]["kind"] for j in seen] == ["success"]
        await demo.sign_up("ada@example.com", "correct horse battery")  # an engine job: unseen
        job = await demo.mutation(
            "messages:scheduleMessage", {"delay": 30, "body": "bye", "author": "a"}
        )
        seen = (await admin.next("Transition"))["modifications"][0]["value"]
        assert [j["state"]["kind"] for j in seen] == ["success", "pending"]
        await demo.mutation("admin:cancelMessage", {"jobId": job})
        seen = (await admin.next("Transition"))["modifications"][0]["value"]
        assert [j["state"]["kind"] for j in seen] == ["success", "canceled"]
    finally:
        for task in harness.tasks:
            task.cancel()
        await asyncio.gather(*harness.tasks, return_exceptions=True)
        await coordinator.stop()


async def test_the_admin_page_lists_uploaded_files_with_their_storage_metadata(
    demo: TestBackend,
) -> None:
    """The demo's file half: an image uploaded to a generated URL and sent as a message is
    listed by ``admin:listFiles`` from ``_storage`` (Convex's fields) with its author, and
    ``admin:getFileUrl`` gives a URL that serves it."""
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 40
    upload_url = await demo.mutation("messages:generateUploadUrl")
    posted = await demo.fetch(
        upload_url, method="POST", body=png, headers={"Content-Type": "image/png"}
    )
    assert posted.status_code == 200
    storage_id = posted.json()["storageId"]
    await demo.mutation("messages:sendImage", {"storageId": storage_id, "author": "Ada"})

    (listed,) = await demo.query("admin:listFiles")
    assert listed["_id"] == storage_id
    assert (listed["author"], listed["size"], listed["contentType"]) == (
        "Ada",
        len(png),
        "image/png",
    )
    assert set(listed) == {"_id", "_creationTime", "sha256", "size", "contentType", "author"}
    url = await demo.query("admin:getFileUrl", {"id": storage_id})
    served = await demo.fetch(url)
    assert (served.status_code, served.content) == (200, png)
    (image,) = await demo.query("messages:list")
    assert (image["format"], image["url"]) == ("image", url)
