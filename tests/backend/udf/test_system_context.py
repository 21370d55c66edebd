"""The seam between the engine and its subsystems: what a ``SystemContext`` gives engine code,
and that nothing outside the engine's core reaches into a function context's private parts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import backend
from backend.audit.log import TABLE as AUDIT
from backend.engine import FunctionFailed
from backend.errors import ConvexError
from backend.testing import TestBackend
from tests.conftest import basic_app

ROOT = Path(__file__).resolve().parents[3]
# The engine's core: where a function context is made, and so may be taken apart.
CORE = {
    "backend/engine.py",
    "backend/udf/context.py",
    "backend/udf/system_context.py",
    "backend/transactions/transaction.py",
    "backend/transactions/query.py",
}
PRIVATE = {"_txn", "_engine"}


async def test_a_system_context_sees_the_transaction_its_caller_and_the_services(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=basic_app()) as t:
        alice = await t.sign_up("alice@example.com", "correct horse battery")
        seen = await alice.mutation("seam:look", {})
    assert seen == {
        "ip": "127.0.0.1",  # the caller's ClientInfo, as the transport gave it
        "sameNow": True,  # the transaction's frozen time
        "subject": alice.user_id,
        "seal": "SecretSeal",  # a registered service, found by its class
        "jobs": 1,  # a system table (sign-up's confirmation mail is a scheduled job)
    }


async def test_a_durable_write_outlives_the_call_that_failed(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app()) as t:
        with pytest.raises(ConvexError, match="rolled back"):
            await t.mutation("seam:keep_then_fail", {"note": "kept"})
        rows = await t.run(lambda ctx: ctx.db.query(AUDIT).collect())
    assert [row["outcome"] for row in rows] == ["kept"]


async def test_a_service_nobody_registered_is_named_in_the_failure() -> None:
    async with TestBackend(app=basic_app()) as t:
        with pytest.raises(
            FunctionFailed, match=r"MissingService: this engine has no Unregistered"
        ):
            await t.mutation("seam:ask_for_unregistered", {})


def _reaches_in(path: Path, root: Path = ROOT) -> list[str]:
    """Every ``x._txn`` / ``x._engine`` (but ``self``'s own) and ``x.services["name"]``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: .{node.attr}")
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "services"
            and isinstance(node.slice, ast.Constant)
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno}: services[...] by name")
    return found


def test_nothing_outside_the_core_reaches_into_a_function_context() -> None:
    found = []
    for folder in ("backend", "functions", "schema", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if str(path.relative_to(ROOT)) not in CORE:
                found += _reaches_in(path)
    assert found == []


def test_the_rule_catches_a_reach_into_ctx(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(ctx, engine):\n    return ctx._txn, engine.services['sensitive']\n")
    assert _reaches_in(bad, tmp_path) == [
        "bad.py:2: ._txn",
        "bad.py:2: services[...] by name",
    ]


def test_the_demo_app_imports_only_backends_public_names() -> None:
    public = set(backend.__all__)
    for folder in ("functions", "schema"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("backend"):
                    assert node.module == "backend", f"{path.name} imports {node.module}"
                    assert {alias.name for alias in node.names} <= public
                if isinstance(node, ast.Import):
                    assert not any(a.name.startswith("backend") for a in node.names), path.name
