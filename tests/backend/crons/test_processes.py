"""Cron ticks with real server processes on one PostgreSQL database: two ``python -m backend
serve`` share a one-second cron, one is killed with SIGKILL, the other stopped; a third starts
after ticks were missed. Every tick is accounted for exactly once: run, or recorded skipped."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import text

from backend.crons import jobs
from backend.storage.database import create_db_engine
from backend.testing import TestBackend
from backend.udf.app import App, load_app
from tests.conftest import POSTGRES_URL
from tests.support.live_server import free_port

ROOT = Path(__file__).resolve().parents[3]
CRON = "every second"
pytestmark = pytest.mark.timeout(240)


@functools.cache
def ticks_app() -> App:
    return load_app("tests.apps.ticks.schema", "tests.apps.ticks.functions")


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = f"crons_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(POSTGRES_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def environment(schema: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=POSTGRES_URL,
        DATABASE_SCHEMA=schema,
        APP_SCHEMA="tests.apps.ticks.schema",
        APP_FUNCTIONS="tests.apps.ticks.functions",
        DEV_MODE="0",
        SECRET_KEY="crons-test-secret",
        SMTP_URL="smtp://127.0.0.1:1",  # production needs one; nothing here sends mail
        HOST="127.0.0.1",
        SITE_PORT="0",  # several servers on one machine: the site origin's 3211 is one port
    )
    return env


class Server:
    def __init__(self, schema: str, log: IO[bytes]) -> None:
        self.schema = schema
        self.port = free_port()
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "backend",
            "serve",
            "--port",
            str(self.port),
            cwd=ROOT,
            env=environment(self.schema),
            stdout=self.log,
            stderr=self.log,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                assert self.process.returncode is None, "the server stopped while starting"
                try:
                    answer = await client.get(f"http://127.0.0.1:{self.port}/api/health")
                    if answer.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("the server did not start")

    async def stop(self, sig: signal.Signals) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        await asyncio.wait_for(self.process.wait(), 30)


async def observe(schema: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The app's rows (one per run) and the cron's recorded runs, oldest first."""
    async with TestBackend(
        POSTGRES_URL, app=ticks_app(), existing=True, pg_schema=schema, deploy=False
    ) as t:
        made = await t.query("ticks:list", {"cron": CRON})
        runs = await t.run(lambda ctx: jobs.runs(ctx.db, CRON))
    return made, runs


async def until_runs(schema: str, at_least: int) -> None:
    for _ in range(600):
        _made, runs = await observe(schema)
        if sum(r["state"] == "success" for r in runs) >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} cron runs")


async def test_each_tick_runs_once_across_processes_a_kill_and_a_restart(
    pg_schema: str, tmp_path: Path
) -> None:
    with (tmp_path / "servers.log").open("wb") as log:
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "backend",
            "migrate",
            cwd=ROOT,
            env=environment(pg_schema),
            stdout=log,
            stderr=log,
        )
        assert await asyncio.wait_for(migrate.wait(), 90) == 0
        first, second = Server(pg_schema, log), Server(pg_schema, log)
        await asyncio.gather(first.start(), second.start())
        await until_runs(pg_schema, 3)
        await first.stop(signal.SIGKILL)  # wherever it was: mid-transaction, mid-sleep
        before = sum(r["state"] == "success" for r in (await observe(pg_schema))[1])
        await until_runs(pg_schema, before + 3)  # the survivor carries on
        await second.stop(signal.SIGTERM)
        stopped_ms = time.time() * 1000
        await asyncio.sleep(3.5)  # three ticks and more fall due with no server up
        restarted_ms = time.time() * 1000
        third = Server(pg_schema, log)
        await third.start()
        before = sum(r["state"] == "success" for r in (await observe(pg_schema))[1])
        await until_runs(pg_schema, before + 2)
        await third.stop(signal.SIGTERM)

    made, runs = await observe(pg_schema)
    succeeded = [r for r in runs if r["state"] == "success"]
    assert len(runs) < jobs.KEEP_RUNS  # the whole history is still there
    # one app row per recorded run: no tick ran twice, not even around the kill
    assert len(made) == len(succeeded)
    # and none ran before it was due (a process that lost a race must not run the next one)
    assert all(r["completedTime"] >= r["scheduledTime"] for r in succeeded)
    assert sorted(r["at"] for r in made) == [r["completedTime"] for r in succeeded]
    ticks = [r["scheduledTime"] for r in runs]
    assert ticks == sorted(set(ticks))
    # every tick from the first to the last is accounted for: run once, or skipped
    for earlier, later in itertools.pairwise(runs):
        covered = earlier["skipped"] if earlier["state"] == "skipped" else 1
        assert later["scheduledTime"] == pytest.approx(earlier["scheduledTime"] + covered * 1000)
    # the ticks missed while no server was up ran once, on the restart, then were skipped
    caught_up = [
        r
        for r in succeeded
        if r["scheduledTime"] < restarted_ms and r["completedTime"] > restarted_ms
    ]
    assert len(caught_up) == 1
    after = [r for r in runs if r["scheduledTime"] > caught_up[0]["scheduledTime"]]
    assert after[0]["state"] == "skipped"
    assert after[0]["skipped"] >= (restarted_ms - stopped_ms) // 1000 - 1
    assert all(r["state"] != "failed" for r in runs)
