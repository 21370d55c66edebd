"""Deployment environment variables: stored sealed, read by functions as ``ctx.env``, a change
seen by the next call without a restart, and never logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from backend.engine import FunctionFailed
from backend.environment import MAX_VALUE_BYTES, TABLE
from backend.errors import ConvexError
from backend.storage.tables import documents, log
from backend.testing import TestBackend
from tests.conftest import basic_app

SECRET = "sk_live_correct-horse-battery-staple"


@pytest.fixture
async def t(database_url: str | None) -> Any:
    async with TestBackend(database_url, app=basic_app()) as backend:
        yield backend


async def test_functions_read_a_variable_and_see_a_change_at_their_next_call(
    t: TestBackend,
) -> None:
    assert await t.query("configured:greeting", {}) == "hello"
    await t.set_env("GREETING", "bonjour")
    assert await t.query("configured:greeting", {}) == "bonjour"
    assert await t.action("configured:act", {}) == "bonjour"
    await t.set_env("SUFFIX", "-x")
    counter = await t.mutation("configured:stamp", {"name": "a"})
    stored = await t.run(lambda ctx: ctx.db.get(counter))
    assert stored is not None
    assert stored["name"] == "a-x"
    await t.set_env("GREETING", "hola")
    assert await t.query("configured:greeting", {}) == "hola"
    assert await t.query("configured:names", {}) == ["GREETING", "SUFFIX"]
    assert await t.remove_env("GREETING")
    assert not await t.remove_env("GREETING")
    assert await t.query("configured:greeting", {}) == "hello"
    assert await t.action("configured:act", {}) is None


async def test_a_missing_variable_is_a_key_error_in_the_function(t: TestBackend) -> None:
    with pytest.raises(FunctionFailed) as info:
        await t.query("configured:required", {})
    assert "KeyError" in info.value.public_message


async def test_values_are_stored_sealed_never_plain(
    t: TestBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await t.set_env("API_KEY", SECRET)
        assert await t.query("configured:required", {}) == SECRET
    async with t.engine.store.engine.connect() as conn:
        stored = [row[0] for row in await conn.execute(select(documents.c.value))]
        logged = [row[0] for row in await conn.execute(select(log.c.value))]
    assert any("API_KEY" in str(doc) for doc in stored)
    assert not any(SECRET in str(doc) for doc in [*stored, *logged])
    # nor does any log line of the server carry it (the call's line never has results)
    assert not any(SECRET in record.getMessage() for record in caplog.records)
    assert SECRET not in repr(t.engine.environment.view(t.engine.environment.values, None))


async def test_a_value_sealed_for_one_name_does_not_open_as_another(t: TestBackend) -> None:
    await t.set_env("A", "one")
    await t.set_env("B", "two")

    async def swap(ctx: Any) -> None:
        rows = [row async for row in ctx.db.query(TABLE)]
        a, b = sorted(rows, key=lambda row: row["name"])
        await ctx.db.patch(a["_id"], {"sealedValue": b["sealedValue"]})

    await t.run(swap)
    assert await t.query("configured:names", {}) == ["B"]  # A no longer opens: it is left out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("", "x"),
        ("1ABC", "x"),
        ("A-B", "x"),
        ("A" * 41, "x"),
        ("A B", "x"),
        ("ÄPFEL", "x"),
        ("OK", "x" * (MAX_VALUE_BYTES + 1)),
        ("OK", "a\x00b"),
    ],
)
async def test_bad_names_and_values_are_refused_and_nothing_is_stored(
    t: TestBackend, name: str, value: str
) -> None:
    with pytest.raises(ConvexError) as info:
        await t.set_env(name, value)
    assert info.value.code == "INVALID_ARGUMENT"
    assert await t.query("configured:names", {}) == []


@pytest.mark.parametrize("system", [False, True])
async def test_app_code_cannot_reach_the_table(t: TestBackend, system: bool) -> None:
    await t.set_env("A", "one")
    with pytest.raises(ConvexError) as info:
        await t.query("configured:peek", {"system": system})
    assert "_environment_variables" in info.value.message
