"""The log under stress: verify-log, a kill -9 mid-commit, two processes on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from backend.cli import main as cli_main
from backend.storage.store import Store
from backend.storage.tables import documents, index_entries, log
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from tests.conftest import BASIC_FUNCTIONS, BASIC_SCHEMA, basic_app

ROOT = Path(__file__).resolve().parents[3]


def _url_and_schema(t: TestBackend) -> tuple[str, str]:
    return t.engine.store.url, t.engine.store.pg_schema or ""


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.backend.storage.worker_process",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_verify_log_passes_then_names_the_first_tampered_row(basic: TestBackend) -> None:
    ids = [await basic.mutation("notes:add", {"author": "a", "body": str(i)}) for i in range(3)]
    await basic.mutation("counters:create", {"name": "c"})
    store = basic.engine.store
    assert (await verify_log(store, basic.engine.schema)).ok

    async with store.engine.begin() as conn:
        await conn.execute(
            update(documents).where(documents.c.doc_id == ids[1]).values(value='{"tampered":1}')
        )
    report = await verify_log(store, basic.engine.schema)
    assert not report.ok
    assert ids[1] in (report.difference or "")


async def test_verify_log_notices_a_missing_index_entry(basic: TestBackend) -> None:
    await basic.mutation("notes:add", {"author": "a", "body": "b"})
    store = basic.engine.store
    async with store.engine.begin() as conn:
        await conn.execute(
            index_entries.delete().where(index_entries.c.index_name == "notes.by_author")
        )
    report = await verify_log(store, basic.engine.schema)
    assert report.difference is not None
    assert "notes.by_author" in report.difference
    assert "missing" in report.difference


async def test_verify_log_cli_exits_non_zero_on_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("APP_SCHEMA", BASIC_SCHEMA)
    monkeypatch.setenv("APP_FUNCTIONS", BASIC_FUNCTIONS)
    assert await asyncio.to_thread(cli_main, ["migrate"]) == 0
    assert await asyncio.to_thread(cli_main, ["verify-log"]) == 0
    store = Store(url)
    async with store.engine.begin() as conn:
        await conn.execute(
            log.insert().values(ts=1, seq=0, table_name="notes", doc_id="x" * 32, value=None)
        )
    await store.close()
    assert await asyncio.to_thread(cli_main, ["verify-log"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


async def test_a_process_killed_mid_commit_leaves_a_consistent_database(basic: TestBackend) -> None:
    url, schema = _url_and_schema(basic)
    proc = await _spawn(url, schema, "insert", "0")
    assert proc.stdout is not None
    for _ in range(150):  # let it commit for a while, then kill it without warning
        await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    report = await verify_log(basic.engine.store, basic.engine.schema)
    assert report.ok, report.difference
    assert report.documents >= 150
    async with basic.engine.store.engine.connect() as conn:
        logged = (await conn.execute(select(func.count()).select_from(log))).scalar_one()
    assert logged == report.documents  # every insert is in the log, nothing half-written


async def test_two_processes_increment_one_counter_exactly(database_url: str | None) -> None:
    if database_url is None:
        database_url = "sqlite"  # SQLite across processes: the file lock serializes them
    async with TestBackend(
        None if database_url == "sqlite" else database_url, app=basic_app()
    ) as t:
        await t.mutation("counters:create", {"name": "shared"})
        url, schema = _url_and_schema(t)
        procs = [await _spawn(url, schema, "increment", "25") for _ in range(2)]
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).strip() == b"ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        for proc in procs:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
            assert proc.returncode == 0
            assert out.strip().endswith(b"done")
        counter: Any = await t.query("counters:get", {"name": "shared"})
        assert counter["value"] == 50
        report = await verify_log(t.engine.store, t.engine.schema)
        assert report.ok, report.difference
        async with t.engine.store.engine.connect() as conn:
            stamps = [r[0] for r in await conn.execute(text("SELECT ts FROM commits ORDER BY ts"))]
        assert len(stamps) == 51
        assert len(set(stamps)) == 51
