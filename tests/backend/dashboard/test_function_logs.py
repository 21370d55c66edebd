"""The dashboard's live function log: ``GET /_dashboard/api/function_logs`` and its ring.

The attacker's view first: no key, a wrong key, the key where it is not taken (the query
string, a cookie, a Bearer header), parameters meant to break the handler, and a production
server with no dashboard. Then what a record may hold (never an argument or a return value),
the long poll, gapless paging and the ring's bounds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.runtime import FakeClock
from backend.testing import TestBackend
from backend.udf.calls import CallLogFile
from backend.udf.recent_calls import RecentCalls, stop_waiting
from tests.conftest import basic_app
from tests.support.live_server import LiveServer, live_server

DEV_KEY = hmac.new(b"live-server-secret", b"dashboard admin key", hashlib.sha256).hexdigest()
PROD_KEY = "p" * 40
LOGS = "/_dashboard/api/function_logs"
ADMIN = {"authorization": f"Convex {DEV_KEY}"}


@pytest.fixture
async def dev(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as server:
        yield server


async def call(http: httpx.AsyncClient, kind: str, path: str, args: dict[str, Any]) -> Any:
    response = await http.post(f"/api/{kind}", json={"path": path, "args": args, "format": "json"})
    assert response.status_code == 200, response.text
    return response.json()


async def until_waiting(ring: RecentCalls, waiting: bool) -> None:
    for _ in range(250):
        if bool(ring._waiters) == waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the ring's waiters are still {ring._waiters!r}")


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert "entries" not in response.text


# ---- who may read it -------------------------------------------------------------------------


async def test_no_key_is_401_and_shows_nothing(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        await call(http, "query", "chatty:hello", {"name": "x"})
        assert_refused(await http.get(LOGS), 401, "UNAUTHENTICATED")
        assert_refused(await http.get(LOGS + "?cursor=0&wait=1"), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "key",
    [
        DEV_KEY[:-1] + ("0" if DEV_KEY[-1] != "0" else "1"),
        DEV_KEY[:-1],
        DEV_KEY + "0",
        DEV_KEY.upper(),
        "live-server-secret",
        "x" * 5000,
    ],
)
async def test_a_wrong_key_is_403(dev: LiveServer, key: str) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        response = await http.get(LOGS, headers={"authorization": f"Convex {key}"})
        assert_refused(response, 403, "FORBIDDEN")


async def test_the_key_anywhere_but_the_convex_header_is_refused(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        for name in ("key", "adminKey", "authorization"):
            query = f"?{name}=Convex+{DEV_KEY}" if name == "authorization" else f"?{name}={DEV_KEY}"
            assert_refused(await http.get(LOGS + query), 401, "UNAUTHENTICATED")
        for name in ("adminKey", "convex_admin_key", "authorization"):
            response = await http.get(LOGS, headers={"cookie": f"{name}={DEV_KEY}"})
            assert_refused(response, 401, "UNAUTHENTICATED")
        for header in (f"Bearer {DEV_KEY}", f"Basic {DEV_KEY}", DEV_KEY, "Convex"):
            response = await http.get(LOGS, headers={"authorization": header})
            assert_refused(response, 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "query",
    [
        "cursor=-1",
        "cursor=1.5",
        "cursor=abc",
        "cursor=",
        "cursor=+1",
        "cursor=%201",
        "cursor=0x10",
        "cursor=1e3",
        "cursor=9007199254740992",  # past what a JavaScript number holds
        "cursor=" + "9" * 400,
        "cursor=1&cursor=2",
        "wait=-1",
        "wait=31",
        "wait=30.001",
        "wait=nan",
        "wait=inf",
        "wait=1e1",
        "wait=",
        "wait=" + "9" * 400,
        "cursor=0&wait=abc",
        "cursor=0&wait=1&wait=2",
    ],
)
async def test_malformed_parameters_are_400_never_500(dev: LiveServer, query: str) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        response = await http.get(f"{LOGS}?{query}", headers=ADMIN)
        assert_refused(response, 400, "INVALID_ARGUMENT")


async def test_the_key_is_checked_before_the_parameters(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url) as http:
        assert_refused(await http.get(LOGS + "?cursor=-1"), 401, "UNAUTHENTICATED")


async def test_production_without_admin_key_has_no_function_log(
    database_url: str | None,
) -> None:
    async with (
        live_server(database_url, dev_mode=False) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for headers in ({}, ADMIN, {"authorization": f"Convex {PROD_KEY}"}):
            response = await http.get(LOGS + "?cursor=0", headers=headers)
            assert_refused(response, 404, "NOT_FOUND")


async def test_production_with_admin_key_takes_that_key_only(database_url: str | None) -> None:
    async with (
        live_server(database_url, dev_mode=False, admin_key=PROD_KEY) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        await call(http, "query", "chatty:hello", {"name": "prod"})
        assert_refused(await http.get(LOGS, headers=ADMIN), 403, "FORBIDDEN")
        response = await http.get(LOGS, headers={"authorization": f"Convex {PROD_KEY}"})
        assert response.status_code == 200
        assert [e["path"] for e in response.json()["entries"]] == ["chatty:hello"]


# ---- what a record holds -------------------------------------------------------------------


async def test_a_record_says_how_the_call_went_and_never_its_arguments_or_value(
    dev: LiveServer,
) -> None:
    secret = "s3cret-" + "q" * 20
    async with httpx.AsyncClient(base_url=dev.url) as http:
        added = await call(http, "mutation", "notes:add", {"author": "ann", "body": secret})
        read = await call(http, "query", "notes:by_author", {"author": "ann"})
        assert read["value"][0]["body"] == secret  # the call did return it
        failed = await call(http, "mutation", "chatty:write", {"name": "w", "fail": True})
        assert failed["status"] == "error"
        await call(http, "query", "chatty:hello", {"name": "printed"})
        response = await http.get(LOGS, headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert secret not in response.text
    assert added["value"] not in response.text  # the new document's id, a return value
    entries = body["entries"]
    assert [e["path"] for e in entries] == [
        "notes:add",
        "notes:by_author",
        "chatty:write",
        "chatty:hello",
    ]
    assert body["cursor"] == entries[-1]["cursor"]
    add, by_author, write, hello = entries
    assert add["kind"] == "mutation"
    assert add["outcome"] == "success"
    assert set(add) == {
        "cursor",
        "ts",
        "path",
        "kind",
        "durationMs",
        "outcome",
        "caller",
        "logLines",
    }
    assert by_author["kind"] == "query"
    assert write["outcome"] == "failure"
    assert write["error"] == "REFUSED"
    assert hello["logLines"][0] == "[LOG] hello printed"


async def test_the_ring_is_fed_when_the_logger_is_quiet(dev: LiveServer) -> None:
    logger = logging.getLogger("backend.functions")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        await dev.engine.run_query("chatty:hello", {"name": "quiet"})
    finally:
        logger.setLevel(level)
    assert dev.engine.recent_calls.after(None).entries[-1]["path"] == "chatty:hello"


async def test_a_quiet_logger_still_bounds_the_ring_by_the_records_sizes(
    database_url: str | None,
) -> None:
    """With the log quiet a small record's size is estimated, not encoded: near its text's
    length all the same; a flood of lines is still cut to the record limit."""
    logger = logging.getLogger("backend.functions")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        async with TestBackend(database_url, app=basic_app()) as t:
            await t.query("chatty:hello", {"name": "ada"})
            await t.query("chatty:flood", {"n": 300, "size": 400})
            kept = list(t.engine.recent_calls._records)
    finally:
        logger.setLevel(level)
    (hello, hello_size), (flood, flood_size) = kept[-2:]
    text = json.dumps({k: v for k, v in hello.items() if k != "cursor"}, ensure_ascii=False)
    assert 0.8 * len(text) <= hello_size <= 1.5 * len(text)
    assert flood["logLines"][-1].startswith("[WARN] (more lines were written")
    flood_text = json.dumps({k: v for k, v in flood.items() if k != "cursor"})
    assert flood_size == len(flood_text) <= 64 * 1024


async def test_the_ring_keeps_the_very_records_the_log_file_gets(
    database_url: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "functions.jsonl"
    logger = logging.getLogger("backend.functions")
    handler, level = CallLogFile(path), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with TestBackend(database_url, app=basic_app()) as t:
            await t.query("chatty:hello", {"name": "ada"})
            await t.action("chatty:act", {"name": "bo"})  # its query is part of its record
            await t.query("chatty:flood", {"n": 300, "size": 400})  # cut to 64 KiB in both
            kept = t.engine.recent_calls.after(None).entries
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [{k: v for k, v in e.items() if k != "cursor"} for e in kept] == written
    assert [e["cursor"] for e in kept] == [1, 2, 3]
    assert kept[2]["logLines"][-1].startswith("[WARN] (more lines")


# ---- the long poll and paging --------------------------------------------------------------


async def test_a_long_poll_answers_when_a_call_ends(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url, timeout=20) as http:
        first = (await http.get(LOGS, headers=ADMIN)).json()
        assert first == {"entries": [], "cursor": 0}
        started = asyncio.get_running_loop().time()
        poll = asyncio.create_task(http.get(f"{LOGS}?cursor=0&wait=25", headers=ADMIN))
        await asyncio.sleep(0.3)
        assert not poll.done()
        await call(http, "query", "chatty:hello", {"name": "now"})
        answer = await asyncio.wait_for(poll, 10)
        assert asyncio.get_running_loop().time() - started < 10
    assert answer.status_code == 200
    assert [e["path"] for e in answer.json()["entries"]] == ["chatty:hello"]
    assert answer.json()["cursor"] == 1


async def test_a_long_poll_with_nothing_new_answers_empty_when_its_wait_is_over(
    dev: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=dev.url, timeout=20) as http:
        answer = await http.get(f"{LOGS}?cursor=0&wait=0.2", headers=ADMIN)
    assert answer.json() == {"entries": [], "cursor": 0}
    assert dev.engine.recent_calls._waiters == set()


async def test_a_client_that_leaves_ends_its_long_poll(dev: LiveServer) -> None:
    ring = dev.engine.recent_calls
    async with httpx.AsyncClient(base_url=dev.url, timeout=20) as http:
        poll = asyncio.create_task(http.get(f"{LOGS}?cursor=0&wait=30", headers=ADMIN))
        await until_waiting(ring, True)
        poll.cancel()  # the connection closes under the request
        with pytest.raises(asyncio.CancelledError):
            await poll
    await until_waiting(ring, False)  # well before the 30 s wait is over


async def test_paging_by_cursor_is_gapless(dev: LiveServer) -> None:
    seen: list[int] = []
    cursor = 0
    async with httpx.AsyncClient(base_url=dev.url, timeout=20) as http:
        for round_ in range(4):
            for i in range(round_ + 1):
                await call(http, "query", "chatty:hello", {"name": f"{round_}-{i}"})
            page = (await http.get(f"{LOGS}?cursor={cursor}", headers=ADMIN)).json()
            seen += [e["cursor"] for e in page["entries"]]
            cursor = page["cursor"]
        again = (await http.get(f"{LOGS}?cursor={cursor}", headers=ADMIN)).json()
    assert seen == list(range(1, 11))
    assert again == {"entries": [], "cursor": 10}


async def test_a_cursor_from_before_a_restart_gets_the_history_flagged(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url, timeout=20) as http:
        await call(http, "query", "chatty:hello", {"name": "after restart"})
        page = (await http.get(f"{LOGS}?cursor=500&wait=5", headers=ADMIN)).json()
    assert page["reset"] is True
    assert [e["cursor"] for e in page["entries"]] == [1]


async def test_a_stopping_server_answers_its_long_polls_at_once(dev: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=dev.url, timeout=20) as http:
        started = asyncio.get_running_loop().time()
        poll = asyncio.create_task(http.get(f"{LOGS}?cursor=0&wait=30", headers=ADMIN))
        await until_waiting(dev.engine.recent_calls, True)
        stop_waiting()  # what ``python -m backend serve`` does as it shuts down
        answer = await asyncio.wait_for(poll, 10)
        assert answer.json() == {"entries": [], "cursor": 0}
        assert asyncio.get_running_loop().time() - started < 10
        again = await http.get(f"{LOGS}?cursor=0&wait=30", headers=ADMIN)  # answered at once
        assert again.json() == {"entries": [], "cursor": 0}


# ---- the ring itself ----------------------------------------------------------------------


def entry(n: int) -> dict[str, Any]:
    return {"path": f"f:{n}", "kind": "query", "outcome": "success", "logLines": []}


def test_the_ring_keeps_its_last_records_and_counts_what_a_late_reader_missed() -> None:
    ring = RecentCalls(max_entries=5)
    for n in range(12):
        ring.add(entry(n), 100)
    assert len(ring) == 5
    page = ring.after(3)
    assert [e["cursor"] for e in page.entries] == [8, 9, 10, 11, 12]
    assert page.missed == 4
    assert ring.after(10).missed == 0
    assert [e["cursor"] for e in ring.after(10).entries] == [11, 12]


def test_the_ring_is_bounded_by_bytes_too_and_keeps_the_newest_at_least() -> None:
    ring = RecentCalls(max_entries=1000, max_bytes=1000)
    for n in range(50):
        ring.add(entry(n), 300)
    assert len(ring) == 3
    assert ring._bytes <= 1000
    ring.add(entry(99), 5000)  # one record larger than the budget: kept alone
    assert [e["path"] for e in ring.after(None).entries] == ["f:99"]


def test_rings_are_separate() -> None:
    one, two = RecentCalls(), RecentCalls()
    one.add(entry(1), 10)
    assert two.after(None).entries == []
    assert two.last == 0


async def test_a_wait_ends_on_the_runtimes_timers_and_on_a_record() -> None:
    clock = FakeClock()
    timers = clock.timers()
    ring = RecentCalls()
    waiting = asyncio.create_task(ring.wait(0, 30, timers))
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(seconds=30)
    assert (await waiting).entries == []

    waiting = asyncio.create_task(ring.wait(0, 30, timers))
    await asyncio.sleep(0)
    ring.add(entry(1), 10)
    page = await asyncio.wait_for(waiting, 1)
    assert [e["cursor"] for e in page.entries] == [1]
    assert ring._waiters == set()


async def test_stopping_ends_every_wait_at_once() -> None:
    ring = RecentCalls()
    timers = FakeClock().timers()
    waiting = asyncio.create_task(ring.wait(0, 30, timers))
    await asyncio.sleep(0)
    stop_waiting()
    assert (await asyncio.wait_for(waiting, 1)).entries == []
    assert (await asyncio.wait_for(ring.wait(0, 30, timers), 1)).entries == []  # later ones too
