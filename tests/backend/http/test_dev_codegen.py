"""``python -m backend dev`` keeps the typed client API current: every deploy it makes
rewrites ``convex/_generated`` from the code just saved."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.backend.http.test_dev import FUNCTIONS, PATIENCE, Dev, dev  # noqa: F401 - the fixture

COUNT = """

@query
async def count(ctx: QueryCtx, atLeast: int = 0) -> int:
    return len(await ctx.db.query("items").collect())
"""

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def this_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev process runs in the app's folder: make it import this tree's engine (not
    whichever one the virtualenv has installed)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def _has(path: Path, text: str) -> str:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while True:
        current = await asyncio.to_thread(_read, path)
        if text in current:
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path} never had {text!r}:\n{current}")
        await asyncio.sleep(0.1)


async def test_a_saved_function_appears_in_the_generated_api(dev: Dev, tmp_path: Path) -> None:  # noqa: F811
    api = tmp_path / "convex" / "_generated" / "api.d.ts"
    await dev.call("mutation", "items:add", {"name": "first"})
    first = await _has(api, 'names: FunctionReference<"query", "public", {}, Array<string>>;')
    assert 'add: FunctionReference<"mutation", "public", { name: string }, string>;' in first
    assert "count" not in first

    (tmp_path / "devapp" / "functions" / "items.py").write_text(FUNCTIONS + COUNT)
    await _has(api, 'count: FunctionReference<"query", "public", { atLeast?: number }, number>;')
    assert await dev.call("query", "items:count", {}) == 1
    assert "items: {" in await _has(api.with_name("dataModel.d.ts"), "document:")
