"""The pytest plugin, driven as a function author drives it: a project of their own (a schema,
functions, three-line tests) run by pytest in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import backend

REPO = Path(backend.__file__).resolve().parents[1]
# a pytest run of its own
pytestmark = pytest.mark.timeout(600)

SCHEMA = """
from pydantic import BaseModel

from backend import define_schema, table


class Task(BaseModel):
    text: str
    owner: str


schema = define_schema(tasks=table(Task).index("by_owner", "owner"))
"""

FUNCTIONS = """
from typing import Any

from backend import MutationCtx, QueryCtx, internal_query, mutation, query


@mutation
async def add(ctx: MutationCtx, text: str) -> str:
    me = await ctx.auth.require_identity()
    return await ctx.db.insert("tasks", {"text": text, "owner": me.subject})


@query
async def mine(ctx: QueryCtx) -> list[dict[str, Any]]:
    me = await ctx.auth.get_user_identity()
    if me is None:
        return []
    return await ctx.db.query("tasks").with_index("by_owner", owner=me.subject).collect()


@query
async def my_name(ctx: QueryCtx) -> Any:
    me = await ctx.auth.require_identity()
    return [me.claims.get("name"), me.claims.get("email")]


@internal_query
async def count(ctx: QueryCtx) -> int:
    return len(await ctx.db.query("tasks").collect())
"""

TESTS = """
import pytest


async def test_a_task_is_mine(user):
    await user.mutation("tasks:add", {"text": "write docs"})
    assert [t["text"] for t in await user.query("tasks:mine")] == ["write docs"]


async def test_the_user_is_alice(user):
    assert await user.query("tasks:my_name") == ["Alice", "alice@example.com"]


async def test_internal_functions_and_nobody(backend, user):
    await user.mutation("tasks:add", {"text": "a"})
    assert await backend.query("tasks:count") == 1
    assert await backend.query("tasks:mine") == []


@pytest.mark.backend(rate_limits=True, hold_scheduled=True)
async def test_the_marker_sets_options(backend):
    assert backend.limits.rate_limits and backend.hold_scheduled


async def test_each_test_has_a_fresh_database(backend):
    assert await backend.query("tasks:count") == 0


async def test_a_wrong_expectation_fails(user):
    assert await user.query("tasks:mine") == ["something"]
"""


def _project(root: Path) -> None:
    (root / "functions").mkdir()
    (root / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (root / "functions" / "__init__.py").write_text("")
    (root / "functions" / "tasks.py").write_text(textwrap.dedent(FUNCTIONS))
    (root / "test_tasks.py").write_text(textwrap.dedent(TESTS))
    (root / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")


def test_a_project_tests_its_functions_with_the_fixtures(tmp_path: Path) -> None:
    _project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "backend.pytest_plugin", "-q", "-rf"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert "1 failed, 5 passed" in out, out
    assert "FAILED test_tasks.py::test_a_wrong_expectation_fails" in out, out
    assert done.returncode == 1


def test_the_package_registers_the_plugin_with_pytest() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["pytest11"]
    # named as its module: a `-p backend.pytest_plugin` or `pytest_plugins` entry naming it
    # too finds it registered already, instead of registering it twice
    assert entry_points == {"backend.pytest_plugin": "backend.pytest_plugin"}
