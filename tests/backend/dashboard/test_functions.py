"""What the dashboard's system functions do, called as the dashboard calls them: over the sync
socket, authenticated with the admin key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from backend import scheduler
from backend.auth.tables import SESSIONS
from tests.backend.dashboard.test_admin_reach import DEV_KEY, admin_auth
from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import SyncSocket, sign_up, sync_socket

P = "_system/dashboard:"


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as live:
        yield live


@pytest.fixture
async def admin(server: LiveServer) -> AsyncIterator[SyncSocket]:
    async with sync_socket(server.url) as client:
        await admin_auth(client, DEV_KEY)
        yield client


async def call(client: SyncSocket, kind: str, name: str, args: dict[str, Any]) -> Any:
    answer = await client.call(kind, P + name, args)
    assert answer["success"] is True, answer
    return answer["result"]


async def fails(client: SyncSocket, kind: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
    answer = await client.call(kind, P + name, args)
    assert answer["success"] is False, answer
    return dict(answer.get("errorData") or {"message": answer["result"]})


async def rows(server: LiveServer, table: str) -> list[dict[str, Any]]:
    async def read(db: Any) -> list[dict[str, Any]]:
        return list(await db.query(table).collect())

    return await server.engine.system_read(read)


async def admin_events(server: LiveServer) -> list[dict[str, Any]]:
    return [e for e in await rows(server, "_audit_events") if e["event"].startswith("admin.")]


async def next_value(client: SyncSocket, query_id: int) -> Any:
    while True:
        transition = await client.transition()
        for modification in transition["modifications"]:
            if modification.get("queryId") == query_id:
                assert modification["type"] == "QueryUpdated", modification
                return modification["value"]


async def test_documents_are_live_and_filtered_by_index(
    server: LiveServer, admin: SyncSocket
) -> None:
    await admin.subscribe(1, P + "documents", {"table": "notes"})
    assert await next_value(admin, 1) == []
    async with sync_socket(server.url, "writer") as writer:
        await writer.call("Mutation", "notes:add", {"author": "ann", "body": "one"})
    live = await next_value(admin, 1)
    assert [(d["author"], d["body"]) for d in live] == [("ann", "one")]
    async with sync_socket(server.url, "writer-2") as writer:
        await writer.call("Mutation", "notes:add", {"author": "bob", "body": "two"})
    assert [d["body"] for d in await next_value(admin, 1)] == ["two", "one"]  # newest first
    await admin.subscribe(
        2, P + "documents", {"table": "notes", "index": "by_author", "values": ["bob"]}
    )
    assert [d["author"] for d in await next_value(admin, 2)] == ["bob"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"table": "_users"}, "table"),
        ({"table": "nope"}, "table"),
        ({"table": "notes", "index": "by_nothing"}, "index"),
        ({"table": "notes", "index": "by_author", "values": ["a", "low", "extra"]}, "values"),
        ({"table": "notes", "limit": 0}, "limit"),
        ({"table": "notes", "limit": 100_000}, "limit"),
    ],
)
async def test_bad_document_reads_are_coded_refusals(
    admin: SyncSocket, args: dict[str, Any], field: str
) -> None:
    await admin.subscribe(1, P + "documents", args)
    while True:
        transition = await admin.transition()
        found = [m for m in transition["modifications"] if m.get("queryId") == 1]
        if found:
            break
    assert found[0]["type"] == "QueryFailed"
    assert found[0]["errorData"]["code"] == "INVALID_ARGUMENT"
    assert found[0]["errorData"]["path"] == field


async def test_edits_are_checked_by_the_schema_and_audited(
    server: LiveServer, admin: SyncSocket
) -> None:
    doc_id = await call(
        admin,
        "Mutation",
        "insertDocument",
        {"table": "notes", "document": {"author": "a", "body": "b"}},
    )
    await call(
        admin,
        "Mutation",
        "replaceDocument",
        {
            "id": doc_id,
            "document": {"_id": doc_id, "author": "a", "body": "edited", "priority": "high"},
        },
    )
    (note,) = await rows(server, "notes")
    assert (note["_id"], note["body"], note["priority"]) == (doc_id, "edited", "high")

    refused = await fails(
        admin, "Mutation", "replaceDocument", {"id": doc_id, "document": {"author": 7, "body": "x"}}
    )
    assert refused["code"] == "INVALID_ARGUMENT"
    refused = await fails(
        admin,
        "Mutation",
        "replaceDocument",
        {"id": doc_id, "document": {"author": "a", "body": "b", "_secret": 1}},
    )
    assert refused["code"] == "INVALID_ARGUMENT"
    (unchanged,) = await rows(server, "notes")
    assert unchanged["body"] == "edited"

    users = await rows(server, "_users")
    assert users == []
    for bad_id in ("not-an-id", "x" * 10_000):
        assert (await fails(admin, "Mutation", "deleteDocument", {"id": bad_id}))[
            "code"
        ] == "INVALID_ARGUMENT"
    await call(admin, "Mutation", "deleteDocument", {"id": doc_id})
    assert await rows(server, "notes") == []
    assert (await fails(admin, "Mutation", "replaceDocument", {"id": doc_id, "document": {}}))[
        "code"
    ] in (
        "NOT_FOUND",
        "INVALID_ARGUMENT",
    )
    events = await admin_events(server)
    assert [(e["event"], e["outcome"], e["resource"], e["scope"]) for e in events] == [
        ("admin.edit", "inserted", doc_id, "notes"),
        ("admin.edit", "replaced", doc_id, "notes"),
        ("admin.edit", "deleted", doc_id, "notes"),
    ]
    assert all(e["method"] == "dashboard" for e in events)


async def test_engine_documents_are_out_of_the_editors_reach(
    server: LiveServer, admin: SyncSocket
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        account = await sign_up(http, "ann@example.com")
    for args in ({"id": account.user_id, "document": {"email": "evil@example.com"}},):
        assert (await fails(admin, "Mutation", "replaceDocument", args))[
            "code"
        ] == "INVALID_ARGUMENT"
    assert (await fails(admin, "Mutation", "deleteDocument", {"id": account.user_id}))[
        "code"
    ] == "INVALID_ARGUMENT"
    assert (
        await fails(admin, "Mutation", "insertDocument", {"table": "_sessions", "document": {}})
    )["code"] == "INVALID_ARGUMENT"
    (user,) = await rows(server, "_users")
    assert user["email"] == "ann@example.com"


async def test_the_runner_runs_as_a_chosen_user_or_as_nobody_and_audits(
    server: LiveServer, admin: SyncSocket
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        account = await sign_up(http, "ann@example.com")
    sessions_before = len(await rows(server, SESSIONS))
    as_ann = await call(
        admin, "Action", "run", {"path": "whoami:in_action", "args": {}, "asUser": account.user_id}
    )
    assert as_ann == {
        "value": {"action": account.user_id, "query": account.user_id, "mutation": account.user_id}
    }
    as_nobody = await call(admin, "Action", "run", {"path": "whoami:in_query", "args": {}})
    assert as_nobody == {"value": None}
    assert len(await rows(server, SESSIONS)) == sessions_before  # the run's session is gone
    internal = await call(
        admin, "Action", "run", {"path": "jobs:side_effect", "args": {"label": "x"}}
    )
    assert internal == {"value": None}

    bad = await fails(
        admin, "Action", "run", {"path": "notes:add", "args": {"author": 5, "body": "b"}}
    )
    assert bad["code"] == "INVALID_ARGUMENT"
    for path in ("nothing:here", P + "run", "_system/mail:deliver"):
        assert (await fails(admin, "Action", "run", {"path": path, "args": {}}))[
            "code"
        ] == "NOT_FOUND"
    not_a_user = await fails(
        admin, "Action", "run", {"path": "whoami:in_query", "args": {}, "asUser": "nobody"}
    )
    assert not_a_user["code"] == "INVALID_ARGUMENT"

    events = await admin_events(server)
    assert [(e["action"], e.get("userId"), e["outcome"]) for e in events] == [
        ("whoami:in_action", account.user_id, "succeeded"),
        ("whoami:in_query", None, "succeeded"),
        ("jobs:side_effect", None, "succeeded"),
        ("notes:add", None, "failed"),
    ]


async def test_the_function_list_has_the_generated_apis_types(admin: SyncSocket) -> None:
    await admin.subscribe(1, P + "functions", {})
    listed = {f["path"]: f for f in await next_value(admin, 1)}
    assert listed["notes:add"] == {
        "path": "notes:add",
        "kind": "mutation",
        "visibility": "public",
        "args": '{ author: string; body: string; priority?: "low" | "high" }',
        "returns": "string",
    }
    assert listed["jobs:side_effect"]["visibility"] == "internal"
    assert not [p for p in listed if p.startswith("_")]


async def test_scheduled_jobs_are_listed_and_canceled_with_an_audit_event(
    server: LiveServer, admin: SyncSocket
) -> None:
    engine = server.engine

    async def schedule(db: Any) -> str:
        when = engine.runtime.now() + timedelta(hours=1)
        return await scheduler.enqueue(engine, db, when, "jobs:side_effect", {"label": "later"})

    job_id, _ = await engine.system_write(schedule)
    await admin.subscribe(1, P + "scheduled", {})
    (job,) = await next_value(admin, 1)
    assert (job["_id"], job["name"], job["state"]) == (
        job_id,
        "jobs:side_effect",
        {"kind": "pending"},
    )
    await call(admin, "Mutation", "cancelScheduled", {"id": job_id})
    (job,) = await next_value(admin, 1)
    assert job["state"] == {"kind": "canceled"}
    (event,) = await admin_events(server)
    assert (event["event"], event["resource"]) == ("admin.cancel", job_id)
    assert (await fails(admin, "Mutation", "cancelScheduled", {"id": "nope"}))[
        "code"
    ] == "INVALID_ARGUMENT"


async def test_the_audit_log_filters(server: LiveServer, admin: SyncSocket) -> None:
    await call(
        admin,
        "Mutation",
        "insertDocument",
        {"table": "notes", "document": {"author": "a", "body": "b"}},
    )
    await call(admin, "Action", "run", {"path": "whoami:in_query", "args": {}})
    await admin.subscribe(1, P + "auditLog", {"event": "admin.run"})
    (run,) = await next_value(admin, 1)
    assert run["action"] == "whoami:in_query"
    await admin.subscribe(2, P + "auditLog", {"action": "nothing"})
    assert await next_value(admin, 2) == []


async def test_the_schema_shows_each_index_and_its_state(admin: SyncSocket) -> None:
    await admin.subscribe(1, P + "schema", {})
    shown = await next_value(admin, 1)
    notes = next(t for t in shown["tables"] if t["name"] == "notes")
    assert notes["deployed"] is True
    assert ("by_author", ["author", "priority"], "ready") in [
        (i["name"], i["fields"], i["state"]) for i in notes["indexes"]
    ]
    assert notes["document"].startswith("{ author: string; body: string;")
    assert shown["outdated"] == []


async def test_running_as_a_user_is_never_a_fresh_sign_in(database_url: str | None) -> None:
    """The runner's session for a user is real but signed in at time zero: what asks for a
    fresh session (org.rename, level 1) still asks for verification, as it would ask them."""
    async with live_server(
        database_url, schema_module="schema", functions_package="functions"
    ) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            account = await sign_up(http, "owner@example.com")
        async with sync_socket(live.url, token=account.convex_token) as owner:
            created = await owner.call("Mutation", "orgs:create", {"name": "Acme"})
            org_id = created["result"]
            renamed = await owner.call("Mutation", "orgs:rename", {"orgId": org_id, "name": "Own"})
            assert renamed["success"] is True  # the owner's own session is fresh
        async with sync_socket(live.url) as admin:
            await admin_auth(admin, DEV_KEY)
            listed = await call(
                admin, "Action", "run", {"path": "orgs:list", "args": {}, "asUser": account.user_id}
            )
            assert [org["name"] for org in listed["value"]] == ["Own"]
            refused = await fails(
                admin,
                "Action",
                "run",
                {
                    "path": "orgs:rename",
                    "args": {"orgId": org_id, "name": "By the admin"},
                    "asUser": account.user_id,
                },
            )
            assert refused["code"] == "SENSITIVE_VERIFICATION_REQUIRED"


async def test_cancel_all_cancels_the_pending_ones_of_one_function_or_all(
    server: LiveServer, admin: SyncSocket
) -> None:
    engine = server.engine

    async def schedule(db: Any) -> list[str]:
        when = engine.runtime.now() + timedelta(hours=1)
        ids = []
        for label in ("a", "b", "c"):
            ids.append(
                await scheduler.enqueue(engine, db, when, "jobs:side_effect", {"label": label})
            )
        ids.append(
            await scheduler.enqueue(engine, db, when, "notes:add", {"author": "x", "body": "y"})
        )
        return ids

    ids, _ = await engine.system_write(schedule)
    assert await call(admin, "Mutation", "cancelAllScheduled", {"name": "jobs:side_effect"}) == 3
    states = {job["_id"]: job["state"] for job in await rows(server, "_scheduled_functions")}
    assert [states[i] for i in ids] == ["canceled", "canceled", "canceled", "pending"]
    assert await call(admin, "Mutation", "cancelAllScheduled", {}) == 1
    assert await call(admin, "Mutation", "cancelAllScheduled", {}) == 0
    assert [e["outcome"] for e in await admin_events(server)] == [
        "canceled 3",
        "canceled 1",
        "canceled 0",
    ]
