"""Function logs: print() and logging inside a function, captured per execution, and one
structured server line per call."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from backend.engine import FunctionFailed
from backend.errors import ConvexError
from backend.testing import TestBackend
from backend.udf import logs
from backend.udf.logs import MAX_LINE_CHARS, MAX_LINES
from tests.conftest import basic_app


@pytest.fixture
async def t(database_url: str | None) -> Any:
    async with TestBackend(database_url, app=basic_app()) as backend:
        yield backend


def calls(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "backend.functions"]


async def test_print_and_logging_become_log_lines_in_convex_form(t: TestBackend) -> None:
    with logs.capture() as captured:
        assert await t.query("chatty:hello", {"name": "ada"}) == "ada"
    assert captured.lines == [
        "[LOG] hello ada",
        "[INFO] info ada",
        "[DEBUG] debug",
        "[WARN] careful",
        "[ERROR] oops",
    ]


async def test_concurrent_calls_never_mix_their_lines(t: TestBackend) -> None:
    async def one(name: str) -> list[str]:
        with logs.capture() as captured:
            await t.query("chatty:interleaved", {"name": name, "n": 5})
        return captured.lines

    names = [f"q{i}" for i in range(12)]
    results = await asyncio.gather(*(one(name) for name in names))
    for name, lines in zip(names, results, strict=True):
        assert lines == [f"[LOG] {name} {i}" for i in range(5)]


async def test_outside_a_function_print_and_logging_are_untouched(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    basic_app()
    from tests.apps.basic.functions import chatty

    print("plain print")
    with caplog.at_level(logging.INFO):
        chatty.log.info("outside a call")
        chatty.log.debug("below the root level")
    assert "plain print" in capsys.readouterr().out
    messages = [r.getMessage() for r in caplog.records]
    assert "outside a call" in messages
    assert "below the root level" not in messages


async def test_a_mutations_lines_travel_with_its_result_and_its_failure(t: TestBackend) -> None:
    result = await t.mutation_result("chatty:write", {"name": "a"})
    assert result.log_lines == ("[LOG] writing a",)
    with logs.capture() as captured, pytest.raises(ConvexError):
        await t.mutation("chatty:write", {"name": "b", "fail": True})
    assert captured.lines == ["[LOG] writing b", "[ERROR] refusing b"]


async def test_racing_mutations_keep_only_their_committed_attempts_lines(t: TestBackend) -> None:
    await t.mutation("counters:create", {"name": "c"})
    results = await asyncio.gather(
        *(t.mutation_result("chatty:bump", {"name": "c"}) for _ in range(20))
    )
    for result in results:
        # one line, from the attempt that committed, naming the value it read
        assert result.log_lines == (f"[LOG] bump from {result.value - 1}",)


async def test_an_actions_lines_include_the_queries_it_ran_and_logged_exceptions(
    t: TestBackend,
) -> None:
    with logs.capture() as captured:
        assert await t.action("chatty:act", {"name": "ada"}) == "ada"
    assert captured.lines[:2] == ["[LOG] acting", "[LOG] hello ada"]
    assert captured.lines[-1].startswith("[ERROR] handled\nTraceback")
    assert "ValueError: caught" in captured.lines[-1]


async def test_lines_are_bounded_in_number_and_length(t: TestBackend) -> None:
    with logs.capture() as captured:
        await t.query("chatty:flood", {"n": MAX_LINES + 50})
    assert len(captured.lines) == MAX_LINES
    assert captured.lines[-1].startswith("[ERROR] Log overflow (maximum 256)")
    with logs.capture() as captured:
        await t.query("chatty:flood", {"n": 1, "size": MAX_LINE_CHARS * 2})
    (line,) = captured.lines
    assert len(line) == MAX_LINE_CHARS
    assert line.endswith(" (truncated due to length)")


async def test_every_call_is_one_structured_server_line(
    t: TestBackend, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await t.sign_up("alice@example.com", "correct horse battery")
    with caplog.at_level(logging.INFO, logger="backend.functions"):
        await alice.query("chatty:hello", {"name": "ada"})
        with pytest.raises(ConvexError):
            await t.mutation("chatty:write", {"name": "b", "fail": True})
        with pytest.raises(FunctionFailed):
            await t.query("chatty:crash", {})
        await t.action("chatty:act", {"name": "x"})
    lines = calls(caplog)
    by_path = {line["path"]: line for line in lines}
    hello = by_path["chatty:hello"]
    assert hello["kind"] == "query"
    assert hello["outcome"] == "success"
    assert hello["caller"] == alice.user_id
    assert hello["logLines"][0] == "[LOG] hello ada"
    assert isinstance(hello["durationMs"], float)
    assert hello["ts"].endswith("Z")
    write = by_path["chatty:write"]
    assert (write["kind"], write["outcome"], write["error"]) == ("mutation", "failure", "REFUSED")
    assert write["caller"] is None
    crash = by_path["chatty:crash"]
    assert crash["outcome"] == "error"
    assert crash["error"].startswith("Server Error")
    assert crash["logLines"] == ["[LOG] about to fail"]
    # the query an action ran is part of the action's line, not a line of its own
    assert [line["path"] for line in lines].count("chatty:hello") == 1
    assert by_path["chatty:act"]["logLines"][1] == "[LOG] hello x"
    # arguments are never written
    assert all("args" not in line for line in lines)
