"""Calls made of several transactions (backend/udf/steps.py): each rule the module states."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.testing import TestBackend
from backend.udf.app import App, load_app
from tests.apps.steps.functions import steps as app_steps


@functools.cache
def steps_app() -> App:
    return load_app("tests.apps.steps.schema", "tests.apps.steps.functions")


@pytest.fixture
async def t(database_url: str | None) -> AsyncIterator[TestBackend]:
    app_steps.between.clear()
    async with TestBackend(database_url, app=steps_app()) as backend:
        yield backend


async def marks(t: TestBackend, call: str) -> list[int]:
    async def read(ctx: Any) -> list[int]:
        rows = await ctx.db.query("marks").with_index("by_call", call=call).collect()
        return sorted(row["step"] for row in rows)

    return await t.run(read)


async def counter(t: TestBackend) -> int:
    async def read(ctx: Any) -> int:
        row = await ctx.db.query("counters").with_index("by_name", name="c").first()
        return 0 if row is None else int(row["value"])

    return await t.run(read)


async def test_each_step_commits_and_the_work_between_runs_once(t: TestBackend) -> None:
    assert await t.mutation("steps:twoSteps", {"call": "a"}) == {"done": "A"}
    assert await marks(t, "a") == [1, 2]
    assert app_steps.between == ["a"]


async def test_a_failed_step_rolls_back_itself_only(t: TestBackend) -> None:
    with pytest.raises(ConvexError) as failed:
        await t.mutation("steps:twoSteps", {"call": "b", "failSecond": True})
    assert failed.value.code == "SECOND_FAILED"
    assert await marks(t, "b") == [1]  # the first step stays committed
    assert await counter(t) == 0


async def test_racing_calls_retry_their_conflicting_step_alone(t: TestBackend) -> None:
    calls = [f"r{i}" for i in range(12)]
    results = await asyncio.gather(*(t.mutation("steps:twoSteps", {"call": c}) for c in calls))
    assert results == [{"done": c.upper()} for c in calls]
    assert await counter(t) == len(calls)  # every second step's increment, exactly once
    for c in calls:
        assert await marks(t, c) == [1, 2]  # no first step ran twice
    assert sorted(app_steps.between) == sorted(calls)


async def test_a_resend_of_a_finished_call_is_answered_without_running_it(t: TestBackend) -> None:
    engine = t.engine
    first = await engine.run_mutation("steps:twoSteps", {"call": "w"}, request=("s", 1))
    again = await engine.run_mutation("steps:twoSteps", {"call": "w"}, request=("s", 1))
    assert (first.value, first.replayed) == ({"done": "W"}, False)
    assert (again.value, again.replayed, again.ts) == ({"done": "W"}, True, first.ts)
    assert await marks(t, "w") == [1, 2]
    assert app_steps.between == ["w"]  # the handler went no further than the first step


async def test_an_early_answer_is_stored_at_the_step_that_gave_it(t: TestBackend) -> None:
    engine = t.engine
    first = await engine.run_mutation("steps:early", {"call": "e"}, request=("s", 2))
    again = await engine.run_mutation("steps:early", {"call": "e"}, request=("s", 2))
    assert first.value == again.value == {"refused": "e"}
    assert again.replayed
    assert await marks(t, "e") == [1]
    assert app_steps.between == ["e"]


async def test_a_resend_after_a_failure_between_steps_runs_again_from_the_first(
    t: TestBackend,
) -> None:
    """A step that returns Proceed stores no answer, so the resend starts over (and the
    first step spends again, which is what it is for)."""
    engine = t.engine
    for _ in range(2):
        with pytest.raises(ConvexError):
            await engine.run_mutation(
                "steps:twoSteps", {"call": "f", "failSecond": True}, request=("s", 3)
            )
    assert await marks(t, "f") == [1, 1]


async def test_a_handler_must_return_its_last_steps_answer(t: TestBackend) -> None:
    with pytest.raises(RuntimeError, match="must return what its last step returned"):
        await t.engine.run_mutation("steps:breaksTheRule", {})


async def test_arguments_are_validated_before_any_step(t: TestBackend) -> None:
    with pytest.raises(ConvexError) as bad:
        await t.mutation("steps:twoSteps", {"call": 5})
    assert bad.value.code == "INVALID_ARGUMENT"
    assert app_steps.between == []
