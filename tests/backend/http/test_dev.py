"""``python -m backend dev``: a save deploys and restarts; a refused deploy keeps the last good
app serving and prints the report. A real dev process, a real server, files really saved."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import free_port

V1_SCHEMA = """
from pydantic import BaseModel
from backend import define_schema, table

class Item(BaseModel):
    name: str

schema = define_schema(items=table(Item))
"""
REQUIRED_LABEL = V1_SCHEMA.replace("name: str", "name: str\n    label: str")
INDEXED_LABEL = V1_SCHEMA.replace("name: str", "name: str\n    label: str | None = None").replace(
    "table(Item)", 'table(Item).index("by_label", "label")'
)
FUNCTIONS = """
from typing import Any
from backend import MutationCtx, QueryCtx, mutation, query

@mutation
async def add(ctx: MutationCtx, name: str) -> str:
    return await ctx.db.insert("items", {"name": name})

@query
async def names(ctx: QueryCtx) -> list[str]:
    return [d["name"] for d in await ctx.db.query("items").collect()]
"""
LABELLED = """

@query
async def by_label(ctx: QueryCtx) -> int:
    return len(await ctx.db.query("items").with_index("by_label").collect())
"""


ROOT = Path(__file__).resolve().parents[3]
# real dev processes, each save spawning a server: minutes on a loaded machine
pytestmark = pytest.mark.timeout(600)
PATIENCE = 60.0  # seconds: a slow machine may take a while to deploy and restart


class Dev:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url
        self.lines: list[str] = []
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode().rstrip())

    async def said(self, text: str) -> None:
        deadline = asyncio.get_running_loop().time() + PATIENCE
        while not any(text in line for line in self.lines):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"dev never said {text!r}:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.05)

    async def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        """Call a function, waiting for a server that answers (one may be restarting)."""
        deadline = asyncio.get_running_loop().time() + PATIENCE
        while True:
            try:
                response = await self.http.post(f"/api/{kind}", json={"path": path, "args": args})
                body = response.json()
                if body.get("status") == "success":
                    return body["value"]
                last: Any = body
            except httpx.TransportError as error:
                last = error
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{path}: {last}\n" + "\n".join(self.lines))
            await asyncio.sleep(0.1)


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[Dev]:
    async with running_dev(tmp_path, FUNCTIONS) as started:
        yield started


@contextlib.asynccontextmanager
async def running_dev(tmp_path: Path, functions: str) -> AsyncIterator[Dev]:
    app = tmp_path / "devapp"
    (app / "functions").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "functions" / "__init__.py").write_text("")
    (app / "functions" / "items.py").write_text(functions)
    (app / "schema.py").write_text(V1_SCHEMA)
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'dev.sqlite3'}",
        APP_SCHEMA="devapp.schema",
        APP_FUNCTIONS="devapp.functions",
        SECRET_KEY="dev-test-secret",
        DEV_MODE="1",  # as `make run` and a developer run it
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(ROOT),  # this tree's engine, whatever the environment has installed
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "backend", "dev", "--port", str(port)),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    dev = Dev(proc, f"http://127.0.0.1:{port}")
    reader = asyncio.create_task(dev.read())
    try:
        yield dev
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
        await reader
        await dev.http.aclose()


async def test_a_refused_deploy_keeps_the_last_good_app_and_a_good_one_restarts_it(
    dev: Dev, tmp_path: Path
) -> None:
    await dev.call("mutation", "items:add", {"name": "first"})
    await dev.call("mutation", "items:add", {"name": "second"})
    app = tmp_path / "devapp"

    (app / "schema.py").write_text(REQUIRED_LABEL)
    await dev.said("dev: deploy refused; the last good app keeps serving")
    report = "\n".join(dev.lines)
    assert "Deploy refused; nothing was changed." in report
    assert "table 'items': 2 documents do not match the new schema" in report
    assert ": label: Field required" in report
    assert await dev.call("query", "items:names", {}) == ["first", "second"]
    await dev.call("mutation", "items:add", {"name": "third"})  # it still writes, too

    (app / "functions" / "items.py").write_text(FUNCTIONS + LABELLED)
    (app / "schema.py").write_text(INDEXED_LABEL)
    await dev.said("dev: deployed; serving the new code")
    assert "built items.by_label (3 documents)" in "\n".join(dev.lines)
    assert await dev.call("query", "items:by_label", {}) == 3
    assert await dev.call("query", "items:names", {}) == ["first", "second", "third"]


BROKEN_SYNTAX = (
    FUNCTIONS
    + """

@query
async def broken(ctx: QueryCtx) -> int
    return 1
"""
)
BROKEN_IMPORT = FUNCTIONS.replace(
    "from backend import MutationCtx", "from backend import no_such_name, MutationCtx"
)
COUNTED = (
    FUNCTIONS
    + """

@query
async def count(ctx: QueryCtx) -> int:
    return len(await ctx.db.query("items").collect())
"""
)


async def test_a_syntax_error_keeps_the_last_good_app_and_says_where(
    dev: Dev, tmp_path: Path
) -> None:
    await dev.call("mutation", "items:add", {"name": "first"})
    source = tmp_path / "devapp" / "functions" / "items.py"
    source.write_text(BROKEN_SYNTAX)
    await dev.said("dev: the last good app keeps serving")  # said after the message
    (message,) = [line for line in dev.lines if "SyntaxError" in line]
    line_number = BROKEN_SYNTAX.splitlines().index("async def broken(ctx: QueryCtx) -> int") + 1
    assert message.startswith(f"dev: devapp/functions/items.py:{line_number}: SyntaxError")
    following = dev.lines[dev.lines.index(message) + 1]
    assert following.strip() == "async def broken(ctx: QueryCtx) -> int"
    assert "Traceback" not in "\n".join(dev.lines)
    assert await dev.call("query", "items:names", {}) == ["first"]  # the last good app

    source.write_text(COUNTED)
    await dev.said("dev: deployed; serving the new code")
    assert await dev.call("query", "items:count", {}) == 1


async def test_an_import_error_keeps_the_last_good_app_and_says_where(
    dev: Dev, tmp_path: Path
) -> None:
    await dev.call("mutation", "items:add", {"name": "first"})
    source = tmp_path / "devapp" / "functions" / "items.py"
    source.write_text(BROKEN_IMPORT)
    await dev.said("dev: the last good app keeps serving")  # said after the message
    (message,) = [line for line in dev.lines if "ImportError" in line]
    assert message.startswith("dev: devapp/functions/items.py:3: ImportError")
    assert "no_such_name" in message
    assert "from backend import no_such_name" in dev.lines[dev.lines.index(message) + 1]
    assert await dev.call("query", "items:names", {}) == ["first"]
    await dev.call("mutation", "items:add", {"name": "second"})

    source.write_text(COUNTED)
    await dev.said("dev: deployed; serving the new code")
    assert await dev.call("query", "items:count", {}) == 2


async def test_an_app_broken_from_the_start_answers_with_the_reason_until_fixed(
    tmp_path: Path,
) -> None:
    async with running_dev(tmp_path, BROKEN_IMPORT) as dev:
        await dev.said("dev: fix the app and save to try again")
        deadline = asyncio.get_running_loop().time() + PATIENCE
        while True:  # the port answers (no request hangs), with the reason
            try:
                response = await dev.http.post(
                    "/api/query", json={"path": "items:names", "args": {}}
                )
                break
            except httpx.TransportError:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
        assert response.status_code == 503
        assert response.json()["code"] == "UNAVAILABLE"
        assert "devapp/functions/items.py:3: ImportError" in response.json()["message"]

        (tmp_path / "devapp" / "functions" / "items.py").write_text(COUNTED)
        await dev.said("dev: deployed; serving the new code")
        assert await dev.call("query", "items:count", {}) == 0


async def test_an_engine_change_restarts_dev_on_the_same_port(dev: Dev) -> None:
    await dev.call("mutation", "items:add", {"name": "kept"})
    engine_file = ROOT / "backend" / "__main__.py"
    stat = engine_file.stat()
    os.utime(engine_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a save
    await dev.said("dev: the engine changed; restarting")
    restarted = dev.lines.index("dev: the engine changed; restarting")
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not any(line.startswith("dev: serving") for line in dev.lines[restarted:]):
        assert asyncio.get_running_loop().time() < deadline, "\n".join(dev.lines)
        await asyncio.sleep(0.05)
    assert await dev.call("query", "items:names", {}) == ["kept"]
    assert dev.proc.returncode is None  # the same process, re-executed
