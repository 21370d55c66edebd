"""The call log file and ``python -m backend logs``, which prints and follows it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend
from backend.udf.calls import CallLogFile, format_call, tail
from tests.conftest import basic_app

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def call_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "logs" / "functions.jsonl"
    logger = logging.getLogger("backend.functions")
    handler = CallLogFile(path)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


def _cli(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "backend", "logs", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def test_each_call_is_one_line_of_the_file_and_the_cli_prints_them(
    database_url: str | None, call_log: Path
) -> None:
    async with TestBackend(database_url, app=basic_app()) as t:
        await t.query("chatty:hello", {"name": "ada"})
        with pytest.raises(ConvexError):
            await t.mutation("chatty:write", {"name": "b", "fail": True})
    text = await asyncio.to_thread(call_log.read_text)
    entries = [json.loads(line) for line in text.splitlines()]
    assert [(e["path"], e["outcome"]) for e in entries] == [
        ("chatty:hello", "success"),
        ("chatty:write", "failure"),
    ]
    assert os.stat(call_log).st_mode & 0o777 == 0o600
    printed = await asyncio.to_thread(_cli, "--file", str(call_log), "--no-follow")
    assert printed[0].endswith("[CONVEX Q(chatty:hello)] [LOG] hello ada")
    assert any("[CONVEX Q(chatty:hello)] success in" in line for line in printed)
    assert printed[-1].split(" ", 1)[1].startswith("[CONVEX M(chatty:write)] failure in")
    assert printed[-1].endswith(": REFUSED")
    # --history bounds what is shown from before; --json prints the stored lines
    last = await asyncio.to_thread(
        _cli, "--file", str(call_log), "--no-follow", "--history", "1", "--json"
    )
    assert len(last) == 1
    assert json.loads(last[0])["path"] == "chatty:write"


async def test_the_cli_follows_calls_appended_while_it_runs(call_log: Path) -> None:
    async with TestBackend(app=basic_app()) as t:
        await t.query("chatty:hello", {"name": "before"})
        follower = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "backend", "logs", "--file", str(call_log), "--history", "0"],
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        assert follower.stdout is not None
        seen: list[str] = []
        try:
            async with asyncio.timeout(30):
                while not any("hello after" in line for line in seen):
                    await t.query("chatty:hello", {"name": "after"})
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            while True:
                                seen.append((await follower.stdout.readline()).decode())
        finally:
            follower.terminate()
            await follower.wait()
        assert not any("before" in line for line in seen)


def test_tail_skips_a_torn_line_and_reads_a_truncated_file_again(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    entry: dict[str, Any] = {"ts": "t", "path": "a:b", "kind": "query", "outcome": "success"}
    path.write_text(json.dumps(entry) + "\nnot json\n" + '{"half": ')
    said: list[str] = []
    tail(path, history=10, follow=False, say=said.append)
    assert said == format_call(entry)
    rounds = iter(range(3))

    def stop() -> bool:
        step = next(rounds, None)
        if step == 0:
            path.write_text(json.dumps({**entry, "path": "c:d"}) + "\n")  # truncated, rewritten
        return step is None

    said.clear()
    tail(path, history=0, follow=True, say=said.append, poll=0.01, stop=stop)
    assert said == format_call({**entry, "path": "c:d"})


def test_a_closed_call_log_opens_its_file_again_and_writes_nowhere_else(tmp_path: Path) -> None:
    """``logging.config`` (as uvicorn configures a server's logging) closes every handler and
    leaves ours on its logger. The next call's line must go to the log file, never to the
    descriptor the file had, which the next file opened (the database, under the dev server)
    takes over."""
    import sqlite3

    log_path, db_path = tmp_path / "calls.jsonl", tmp_path / "other.sqlite3"
    handler = CallLogFile(log_path)
    logger = logging.getLogger("tests.call_log_reopen")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info('{"n": 1}')
        handler.close()  # what logging.config does to it
        db = sqlite3.connect(db_path)  # likely on the number the log file had
        db.execute("CREATE TABLE t (x)")
        db.commit()
        logger.info('{"n": 2}')
        assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
        db.close()
        assert db_path.read_bytes().startswith(b"SQLite format 3\x00")
        assert [json.loads(line) for line in log_path.read_text().splitlines()] == [
            {"n": 1},
            {"n": 2},
        ]
    finally:
        logger.removeHandler(handler)
        handler.close()
