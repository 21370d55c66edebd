"""``run``, ``export``, ``import`` and ``--help`` as an author runs them: real subprocesses on a
real database (SQLite and PostgreSQL), the data made and checked through the harness."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backend.files.api import StorageActions
from backend.testing import RunCtx, TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD, cheap_passwords
from tests.conftest import BASIC_FUNCTIONS, BASIC_SCHEMA, basic_app

ROOT = Path(__file__).resolve().parents[2]
# a dozen CLI processes a test: minutes on a loaded machine
pytestmark = pytest.mark.timeout(600)
VERBS = [
    "serve",
    "dev",
    "migrate",
    "migrations",
    "verify-log",
    "compact",
    "run",
    "export",
    "import",
]


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def cli(t: TestBackend, cwd: Path, *args: str, app: str = "demo") -> Done:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": t.url,
        "DEV_MODE": "1",
        "SECRET_KEY": "cli-verbs-test-secret",
        "STORAGE_DIR": str(t.files_dir),  # the harness's blob store: its files are the CLI's
    }
    if t.pg_schema is not None:
        env["DATABASE_SCHEMA"] = t.pg_schema
    if app == "basic":
        env.update(APP_SCHEMA=BASIC_SCHEMA, APP_FUNCTIONS=BASIC_FUNCTIONS)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def demo(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, passwords=cheap_passwords()) as t:
        yield t


async def _tables(t: TestBackend) -> dict[str, list[dict[str, Any]]]:
    async def read(ctx: RunCtx) -> dict[str, list[dict[str, Any]]]:
        return {
            name: await ctx.db.query(name).collect()
            for name in ("orgs", "memberships", "invitations")
        }

    return await t.run(read)


async def _sessions_of(t: TestBackend, user: UserHandle) -> int:
    async def count(ctx: RunCtx) -> int:
        rows = await ctx.db.query("_sessions").collect()
        return sum(1 for row in rows if row["userId"] == user.user_id)

    return await t.run(count)


def test_help_lists_every_verb_on_one_line_each() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "backend", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    for verb in VERBS:
        (line,) = [each for each in lines if each.split()[:1] == [verb]]
        assert len(line.split()) > 2, line  # the verb, then what it does, on its own line


# ---- run --------------------------------------------------------------------------------------


async def test_run_calls_as_nobody_or_as_a_user(demo: TestBackend, tmp_path: Path) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    nobody = await cli(demo, tmp_path, "run", "account:me")
    assert (nobody.code, nobody.json()) == (0, None), nobody.err
    refused = await cli(demo, tmp_path, "run", "orgs:create", '{"name": "Acme"}')
    assert refused.code == 1
    assert "UNAUTHENTICATED" in refused.err
    created = await cli(
        demo, tmp_path, "run", "orgs:create", '{"name": "Acme"}', "--as", "ALICE@example.com"
    )
    assert created.code == 0, created.err
    org = created.json()
    listed = await cli(demo, tmp_path, "run", "orgs:list", "--as", "alice@example.com")
    assert listed.json() == [{"_id": org, "name": "Acme", "role": "owner"}]
    assert await alice.query("orgs:list") == listed.json()
    # the session each call opened is gone: only the sign-up's remains
    assert await _sessions_of(demo, alice) == 1


async def test_run_is_no_way_around_step_up(demo: TestBackend, tmp_path: Path) -> None:
    alice = await demo.sign_up("alice@example.com", PASSWORD)
    org = await alice.mutation("orgs:create", {"name": "Acme"})
    args = json.dumps({"orgId": org})
    refused = await cli(demo, tmp_path, "run", "orgs:remove", args, "--as", alice.email)
    assert refused.code == 1
    assert "SENSITIVE_VERIFICATION_REQUIRED" in refused.err
    assert len((await _tables(demo))["orgs"]) == 1


async def test_run_refuses_bad_input_with_a_message(demo: TestBackend, tmp_path: Path) -> None:
    cases = [
        (("run", "orgs:nope"), "no function 'orgs:nope'"),
        (("run", "orgs:list", "--as", "nobody@example.com"), "no user has the email"),
    ]
    for args, message in cases:
        done = await cli(demo, tmp_path, *args)
        assert done.code == 2, (args, done.err)
        assert message in done.err, (args, done.err)
        assert "Traceback" not in done.err
    bad = await cli(demo, tmp_path, "run", "orgs:create", '{"name": 5}', "--as", "x@example.com")
    assert bad.code == 2


def test_run_refuses_arguments_that_are_not_an_object(tmp_path: Path) -> None:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "DEV_MODE": "1", "SECRET_KEY": "x"}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'never-opened.sqlite3'}"
    for raw, message in (("{not json", "not a JSON object"), ("[1, 2]", "must be a JSON object")):
        done = subprocess.run(
            [sys.executable, "-m", "backend", "run", "orgs:create", raw],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "never-opened.sqlite3").exists()  # refused before any database


def test_a_verb_without_the_servers_key_says_how_to_give_it(tmp_path: Path) -> None:
    """Outside development mode the verbs need the servers' ``SECRET_KEY``: without one they
    refuse in one line, before opening any database, and never fall back to the development
    key a dev server keeps in ``data/``."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("DEV_MODE", "SECRET_KEY")}
    env.update(PYTHONPATH=str(ROOT), DEV_MODE="0")
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'never-opened.sqlite3'}"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret_key").write_text("the development key")
    for verb in (["run", "orgs:create", "{}"], ["export", "--path", str(tmp_path / "out.zip")]):
        done = subprocess.run(
            [sys.executable, "-m", "backend", *verb],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "SECRET_KEY must be set" in done.stderr
        assert "DEV_MODE=1" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "never-opened.sqlite3").exists()
    assert not (tmp_path / "out.zip").exists()


async def test_run_calls_internal_functions(database_url: str | None, tmp_path: Path) -> None:
    async with TestBackend(database_url, app=basic_app()) as t:
        await t.mutation("counters:create", {"name": "n"})
        done = await cli(t, tmp_path, "run", "counters:bump", '{"name": "n"}', app="basic")
        assert (done.code, done.out.strip()) == (0, "1"), done.err
        assert (await t.query("counters:get", {"name": "n"}))["value"] == 1


# ---- export and import ------------------------------------------------------------------------


async def _some_data(t: TestBackend) -> None:
    alice = await t.sign_up("alice@example.com", PASSWORD)
    for name in ("Acme", "Globex", "Initech"):
        org = await alice.mutation("orgs:create", {"name": name})
    await alice.mutation("members:add", {"orgId": org, "email": "bob@example.com", "role": "admin"})


async def test_export_then_import_round_trips_every_document(
    demo: TestBackend, database_url: str | None, tmp_path: Path
) -> None:
    await _some_data(demo)
    file_id = await StorageActions(demo.engine).store(b"a stored file", "text/plain")
    snapshot = tmp_path / "snapshot.zip"
    exported = await cli(demo, tmp_path, "export", "--path", str(snapshot))
    assert exported.code == 0, exported.err
    assert "exported" in exported.out
    assert "_storage: 1 files, 13 bytes" in exported.out
    with zipfile.ZipFile(snapshot) as archive:
        names = set(archive.namelist())
        listing = archive.read("_tables/documents.jsonl").decode().splitlines()
        orgs = archive.read("orgs/documents.jsonl").decode().splitlines()
        assert archive.read(f"_storage/{file_id}.txt") == b"a stored file"
    assert {"README.md", "orgs/documents.jsonl", "_storage/documents.jsonl"} <= names
    assert not any(name.startswith("_users") or name.startswith("_sessions") for name in names)
    assert {json.loads(line)["name"] for line in listing} == {"orgs", "memberships", "invitations"}
    assert len(orgs) == 3
    before = await _tables(demo)
    async with TestBackend(database_url) as fresh:
        imported = await cli(fresh, tmp_path, "import", str(snapshot))
        assert imported.code == 0, imported.err
        assert "imported" in imported.out
        assert await _tables(fresh) == before  # same ids, same creation times, same fields
        assert await StorageActions(fresh.engine).get(file_id) == b"a stored file"
        # a second import meets tables that are not empty: refused, nothing written
        again = await cli(fresh, tmp_path, "import", str(snapshot))
        assert again.code == 1
        assert "not empty" in again.err
        assert await _tables(fresh) == before
        replaced = await cli(fresh, tmp_path, "import", str(snapshot), "--replace")
        assert replaced.code == 0, replaced.err
        assert await _tables(fresh) == before
        assert await StorageActions(fresh.engine).get(file_id) == b"a stored file"
        assert len([p for p in fresh.files_dir.rglob("*") if p.is_file()]) == 1


def _edited(source: Path, target: Path, edit: dict[str, list[str] | None]) -> None:
    """A copy of the snapshot ``source`` with some members' lines replaced (None drops one)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name not in edit:
                new.writestr(name, old.read(name))
        for name, lines in edit.items():
            if lines is not None:
                new.writestr(name, "".join(line + "\n" for line in lines))


async def test_an_import_that_breaks_the_schema_is_refused_whole(
    demo: TestBackend, database_url: str | None, tmp_path: Path
) -> None:
    await _some_data(demo)
    snapshot = tmp_path / "snapshot.zip"
    assert (await cli(demo, tmp_path, "export", "--path", str(snapshot))).code == 0
    with zipfile.ZipFile(snapshot) as archive:
        orgs = archive.read("orgs/documents.jsonl").decode().splitlines()
        memberships = archive.read("memberships/documents.jsonl").decode().splitlines()
    wrong_type = json.loads(orgs[1]) | {"name": 5}
    wrong_table = json.loads(memberships[0]) | {"_id": json.loads(orgs[0])["_id"]}
    broken = tmp_path / "broken.zip"
    _edited(
        snapshot,
        broken,
        {
            "orgs/documents.jsonl": [orgs[0], json.dumps(wrong_type), "{not json", orgs[0]],
            "memberships/documents.jsonl": [json.dumps(wrong_table)],
            "widgets/documents.jsonl": [orgs[0]],
            "_users/documents.jsonl": ["{}"],
            "_storage/kg2abc": ["bytes"],
        },
    )
    expected = [
        "orgs line 2",  # the field of the wrong type
        ": field name:",
        "orgs line 3: not a document",
        "appears twice",
        "not an id of memberships",
        "no table 'widgets'",
        "engine's own table",
        "_storage/kg2abc: not a file of _storage",
    ]
    async with TestBackend(database_url) as fresh:
        done = await cli(fresh, tmp_path, "import", str(broken))
        assert done.code == 1, done.err
        assert "nothing was written" in done.err
        for fragment in expected:  # every refusal is reported, not only the first
            assert fragment in done.err, (fragment, done.err)
        assert await _tables(fresh) == {"orgs": [], "memberships": [], "invitations": []}
        not_zip = tmp_path / "not.zip"
        not_zip.write_text("hello")
        done = await cli(fresh, tmp_path, "import", str(not_zip))
        assert done.code == 1
        assert "not a readable ZIP" in done.err
        assert "Traceback" not in done.err
