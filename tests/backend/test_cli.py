"""The CLI as an operator runs it: ``migrate`` deploys, refuses, survives ``kill -9``;
``migrations run`` resumes; ``serve`` refuses an undeployed schema; a deploy beside a second
process that keeps writing. Every command is a real subprocess on a real database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from backend.storage.database import create_db_engine
from backend.storage.deployment import IndexState, load_deployment
from backend.storage.store import Store
from backend.storage.tables import index_entries
from backend.storage.verify import verify_log
from backend.testing import TestBackend
from tests.backend.storage.test_deploy import ITEMS, entries_of, evolve, state_of, with_items

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Database:
    url: str
    pg_schema: str | None

    def env(self, version: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.url,
            APP_SCHEMA=f"tests.apps.evolve.{version}",
            APP_FUNCTIONS="tests.apps.evolve.functions",
            DEV_MODE="0",
            SECRET_KEY="cli-test-secret",
            # production refuses to start without a mail server; none is reached in these tests
            SMTP_URL="smtp://127.0.0.1:1",
        )
        if self.pg_schema is not None:
            env["DATABASE_SCHEMA"] = self.pg_schema
        return env

    def store(self) -> Store:
        return Store(self.url, pg_schema=self.pg_schema)

    def backend(self, version: str) -> TestBackend:
        return TestBackend(self.url, app=evolve(version), existing=True, pg_schema=self.pg_schema)


@pytest.fixture
async def db(database_url: str | None, tmp_path: Path) -> AsyncIterator[Database]:
    if database_url is None:
        yield Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", None)
        return
    schema = f"cli_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(database_url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield Database(database_url, schema)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=1 << 24,  # the writer's last line lists every id it left alive
    )


async def cli(db: Database, version: str, *args: str) -> tuple[int, str]:
    proc = await spawn(db.env(version), "backend", *args)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def verified(db: Database) -> None:
    store = db.store()
    try:
        report = await verify_log(store)
    finally:
        await store.close()
    assert report.ok, report.difference
    assert report.building == report.dropping == ()


async def populated(db: Database, count: int = ITEMS) -> None:
    """The v1 app deployed, with ``count`` items."""
    async with db.backend("v1") as t:
        await with_items(t, count)


async def test_migrate_backfills_refuses_migrates_and_drops(db: Database) -> None:
    assert (await cli(db, "v1", "migrate"))[0] == 0
    await populated(db)

    code, out = await cli(db, "with_index", "migrate")
    assert code == 0, out
    assert "built items.by_n (500 documents)" in out
    code, out = await cli(db, "with_index", "verify-log")
    assert code == 0, out
    async with db.backend("with_index") as t:
        assert len(await t.query("items:by_n", {"low": 0, "high": ITEMS})) == ITEMS

    store = db.store()
    before = await state_of(store)
    code, out = await cli(db, "required_label", "migrate")
    assert code == 1, out
    assert "Deploy refused; nothing was changed." in out
    assert "table 'items': 500 documents do not match" in out
    assert out.count(": label: Field required") == 10
    assert await state_of(store) == before

    code, out = await cli(db, "optional_label", "migrate")  # drops by_n too
    assert code == 0, out
    assert "dropped the entries of items.by_n" in out
    assert await entries_of(store, "items.by_n") == 0
    done = "migration items:fill_label: 500 documents, 500 changed, 0 deleted (done)"
    code, out = await cli(
        db, "optional_label", "migrations", "run", "fill_label", "--batch-size", "100"
    )
    assert code == 0, out
    assert done in out
    code, out = await cli(db, "optional_label", "migrations", "run", "items:fill_label")
    assert (code, out.strip().splitlines()) == (0, [done])  # recorded as done: nothing runs
    code, out = await cli(db, "optional_label", "migrations", "list")
    assert code == 0, out
    assert done in out
    assert "migration items:drop_odd: 0 documents, 0 changed, 0 deleted (in progress)" in out
    code, out = await cli(db, "required_label", "migrate")
    assert code == 0, out
    assert "table 'items' has new fields" in out
    await store.close()
    await verified(db)


async def test_migrate_prints_progress_for_a_large_backfill(db: Database) -> None:
    async with db.backend("v1") as t:
        await with_items(t, 6000)
    code, out = await cli(
        db, "with_index", "migrate", "--batch-size", "300", "--batch-pause", "0.1"
    )
    assert code == 0, out
    progress = [line for line in out.splitlines() if line.startswith("backfilling items.by_n")]
    assert progress, out
    assert progress[-1].startswith("backfilling items.by_n: 6,000 documents in ")
    assert any("of 6,000 documents" in line for line in progress)


async def test_a_deploy_killed_in_the_middle_of_a_backfill_finishes_when_run_again(
    db: Database,
) -> None:
    await populated(db)
    store = db.store()
    proc = await spawn(
        db.env("with_index"), "backend", "migrate", "--batch-size", "5", "--batch-pause", "0.02"
    )
    for _ in range(1500):  # until the backfill is well under way
        build = (await load_deployment(store)).indexes.get("items.by_n")
        if (
            build is not None
            and build.cursor is not None
            and await entries_of(store, "items.by_n") > 50
        ):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the backfill did not start")
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()

    build = (await load_deployment(store)).indexes["items.by_n"]
    assert build.state is IndexState.BUILDING
    assert 0 < await entries_of(store, "items.by_n") < ITEMS
    await verified_allowing_builds(store)
    async with db.backend("v1") as old:  # the old app serves on, unaware of the build
        await old.mutation("items:add", {"name": "meanwhile", "n": 9999})

    code, out = await cli(db, "with_index", "migrate")
    assert code == 0, out
    assert await entries_of(store, "items.by_n") == ITEMS + 1
    await store.close()
    await verified(db)


async def verified_allowing_builds(store: Store) -> None:
    report = await verify_log(store)
    assert report.ok, report.difference
    assert report.building == ("items.by_n",)


async def test_a_migration_killed_in_the_middle_resumes_where_it_stopped(db: Database) -> None:
    await populated(db)
    async with db.backend("optional_label"):
        pass  # deployed
    store = db.store()

    async def progress() -> tuple[int, bool]:
        async with store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT value FROM documents WHERE table_name = '_migrations'")
                )
            ).first()
        if row is None:
            return 0, False
        record = json.loads(row.value)
        return int(record["processed"]), bool(record["done"])

    proc = await spawn(
        db.env("optional_label"),
        "backend",
        *("migrations", "run", "fill_label", "--batch-size", "10", "--batch-pause", "0.02"),
    )
    for _ in range(1500):
        if (await progress())[0] >= 50:
            break
        await asyncio.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    processed, done = await progress()
    assert 50 <= processed < ITEMS
    assert not done
    assert processed % 10 == 0  # whole batches only
    async with db.backend("optional_label") as t:
        labelled = await t.run(
            lambda ctx: ctx.db.query("items").filter(lambda d: d.get("label") is not None).collect()
        )
        assert len(labelled) == processed
    await verified(db)

    code, out = await cli(db, "optional_label", "migrations", "run", "fill_label")
    assert code == 0, out
    assert "500 documents, 500 changed" in out  # the rerun did only what was left
    async with db.backend("optional_label") as t:
        items = await t.run(lambda ctx: ctx.db.query("items").collect())
        assert all(d.get("label") for d in items)
    await store.close()
    await verified(db)


async def test_a_backfill_beside_another_process_that_keeps_writing(db: Database) -> None:
    await populated(db)
    store = db.store()
    writer = await spawn(
        db.env("v1"), "tests.backend.storage.evolve_writer", db.url, db.pg_schema or ""
    )
    assert writer.stdout is not None
    for _ in range(20):  # it is writing
        assert (await asyncio.wait_for(writer.stdout.readline(), 30)).strip() == b"commit"
    code, out = await cli(
        db, "with_index", "migrate", "--batch-size", "10", "--batch-pause", "0.01"
    )
    assert code == 0, out
    lines = [line.decode().strip() async for line in writer.stdout]
    await asyncio.wait_for(writer.wait(), 30)
    assert lines[-2] == "SCHEMA_OUTDATED"  # its first write to items after the new index
    during = lines.count("commit")
    assert during > 20, f"only {during} writes during the deploy"
    alive = set(json.loads(lines[-1]))

    async with db.backend("with_index") as t:
        found = await t.query("items:by_n", {"low": -(10**9), "high": 10**9})
        by_index = {d["_id"] for d in found}
        assert alive <= by_index
        assert len(by_index) == await t.query("items:count")
        assert [d["n"] for d in found] == sorted(d["n"] for d in found)
    async with store.engine.connect() as conn:
        count = select(func.count()).select_from(index_entries)
        by_n = (
            await conn.execute(count.where(index_entries.c.index_name == "items.by_n"))
        ).scalar()
    assert by_n == len(by_index)
    await store.close()
    await verified(db)


async def test_serve_refuses_an_undeployed_schema_and_names_the_command(db: Database) -> None:
    assert (await cli(db, "v1", "migrate"))[0] == 0
    code, out = await cli(db, "with_index", "serve", "--port", "1")
    assert code == 2, out
    assert "The app schema is not deployed (index items.by_n is new)" in out
    assert "Run `python -m backend migrate`" in out
