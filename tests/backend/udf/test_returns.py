"""Return validation: a function's declared return type is checked on the way out, as a
Convex ``returns:`` validator is; a mismatch fails the call (a mutation writes nothing)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import pytest
from sqlalchemy import func, select

from backend import QueryCtx, query
from backend.engine import FunctionFailed
from backend.storage.tables import commits
from backend.testing import TestBackend
from backend.udf.validation import ReturnsValidationError, fast_check
from backend.values.convex_json import Int64
from tests.conftest import basic_app


@pytest.fixture
async def t(database_url: str | None) -> Any:
    async with TestBackend(database_url, app=basic_app()) as backend:
        yield backend


async def _commits(t: TestBackend) -> int:
    async with t.engine.store.engine.connect() as conn:
        count: int = (await conn.execute(select(func.count()).select_from(commits))).scalar_one()
        return count


async def _failure(call: Any) -> str:
    with pytest.raises(FunctionFailed) as info:
        await call
    return info.value.public_message


async def test_a_mutation_returning_the_wrong_type_fails_and_writes_nothing(
    t: TestBackend,
) -> None:
    before = await _commits(t)
    message = await _failure(t.mutation("shapes:create_counted", {"name": "a", "claim": "str"}))
    assert message == (
        "ReturnsValidationError: Value does not match validator.\n\n"
        'Value: "one"\n'
        "Validator: v.number() (an integer)\n"
        "Function: shapes:create_counted"
    )
    assert await _commits(t) == before
    assert await t.query("counters:get", {"name": "a"}) is None
    # the same mutation returning what it declares commits
    assert await t.mutation("shapes:create_counted", {"name": "a", "claim": "int"}) == 1
    assert (await t.query("counters:get", {"name": "a"}))["value"] == 0


async def test_returns_on_the_decorator_overrides_the_annotation(t: TestBackend) -> None:
    counter = await t.mutation("shapes:create_declared", {"name": "a"})
    assert isinstance(counter, str)
    message = await _failure(
        t.mutation("shapes:create_declared", {"name": "b", "wrong_table": True})
    )
    assert message.startswith("ReturnsValidationError: Value does not match validator.")
    assert 'Validator: v.id("counters")' in message
    assert await t.query("counters:get", {"name": "b"}) is None


async def test_a_declared_object_refuses_fields_it_does_not_declare(t: TestBackend) -> None:
    """A query declaring a public shape cannot leak the stored document it read."""
    await t.mutation("counters:create", {"name": "a"})
    message = await _failure(t.query("shapes:public", {"name": "a"}))
    assert message.startswith(
        "ReturnsValidationError: Object contains extra field `_id` that is not in the validator."
    )
    assert "Validator: v.object({name: v.string(), value: v.number() (an integer)})" in message
    assert await t.query("shapes:public_shaped", {"name": "a"}) == {"name": "a", "value": 0}
    assert await t.query("shapes:public", {"name": "nobody"}) is None


async def test_nested_paths_and_missing_fields_read_like_convex(t: TestBackend) -> None:
    await t.mutation("counters:create", {"name": "a"})
    await t.mutation("counters:create", {"name": "b"})
    assert (await t.query("shapes:page", {}))["total"] == 2
    message = await _failure(t.query("shapes:page", {"bad_at": 1}))
    assert message == (
        "ReturnsValidationError: Value does not match validator.\n"
        "Path: .counters[1].value\n"
        'Value: "many"\n'
        "Validator: v.number() (an integer)\n"
        "Function: shapes:page"
    )
    message = await _failure(t.query("shapes:missing_field", {}))
    assert message.startswith(
        "ReturnsValidationError: Object is missing the required field `value`."
    )
    assert 'Object: {"name":"x"}' in message


async def test_none_any_and_no_annotation(t: TestBackend) -> None:
    assert await t.query("shapes:nothing", {}) is None
    message = await _failure(t.query("shapes:nothing", {"value": 3}))
    assert "Validator: v.null()" in message
    assert await t.query("shapes:anything", {"value": [1, "x"]}) == [1, "x"]
    assert await t.query("shapes:unannotated", {"value": {"a": 1}}) == {"a": 1}


async def test_numbers_are_checked_as_they_travel(t: TestBackend) -> None:
    assert await t.query("shapes:number", {"value": 3}) == 3  # an int is a number
    assert await t.query("shapes:number", {"value": 2.5}) == 2.5
    assert await t.query("shapes:inner_count", {"claim": "int"}) == 1
    message = await _failure(t.query("shapes:number", {"value": True}))
    assert "Value: true" in message


async def test_a_nested_querys_bad_return_fails_the_mutation_that_ran_it(
    t: TestBackend,
) -> None:
    before = await _commits(t)
    message = await _failure(t.mutation("shapes:create_then_ask", {"name": "a", "claim": "str"}))
    assert message.endswith("Function: shapes:inner_count")
    assert await _commits(t) == before
    assert await t.mutation("shapes:create_then_ask", {"name": "a", "claim": "int"}) == 1


async def test_an_actions_return_is_checked(t: TestBackend) -> None:
    assert await t.action("shapes:act", {"claim": "list"}) == ["a"]
    message = await _failure(t.action("shapes:act", {"claim": "str"}))
    assert "Validator: v.array(v.string())" in message


async def test_a_secret_named_field_is_never_echoed(t: TestBackend) -> None:
    message = await _failure(t.query("shapes:secret_shape", {}))
    assert "hunter2" not in message
    assert "Value: <redacted>" in message


async def test_outside_dev_mode_the_caller_sees_server_error_and_the_log_has_the_detail(
    database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with TestBackend(database_url, dev_mode=False, app=basic_app()) as t:
        with caplog.at_level(logging.ERROR, logger="backend.engine"):
            message = await _failure(
                t.mutation("shapes:create_counted", {"name": "a", "claim": "x"})
            )
        assert message == "Server Error"
        assert await t.query("counters:get", {"name": "a"}) is None
    logged = [r.getMessage() for r in caplog.records if r.name == "backend.engine"]
    assert any(
        line.startswith("ReturnsValidationError: Value does not match validator.")
        and "Function: shapes:create_counted" in line
        for line in logged
    )


def test_the_decorator_takes_returns_or_a_function_and_nothing_else() -> None:
    @query(returns=list[int])
    async def listed(ctx: QueryCtx) -> Any:
        return [1]

    assert listed.validates_returns
    listed.validate_returns([1, 2.0])
    with pytest.raises(TypeError, match="decorates a function"):
        query(returns=int)(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="registered twice"):
        query(listed)


@pytest.mark.parametrize(
    "annotation",
    [
        int,
        float,
        str,
        bool,
        bytes,
        None,
        list,
        dict,
        list[int],
        list[dict[str, Any]],
        dict[str, list[float]],
        str | None,
        int | str,
        Literal["a", 1],
        list[Literal[True]],
    ],
)
def test_the_fast_path_agrees_with_the_full_check(annotation: Any) -> None:
    """A cheap predicate decides instead of pydantic only where pydantic would accept; where
    it refuses, pydantic looks (and words the complaint)."""
    values: list[Any] = [
        None, True, False, 0, 1, -1, 2.5, 3.0, -0.0, float("nan"), 2**60, Int64(5), "a", "",
        b"x", [], [1, 2], [1.0], ["a"], [True], (1, 2), {}, {"a": 1}, {"a": [1.5]}, {1: "x"},
        [{"a": 1}], [{"a": {"b": None}}], {"a": "b"}, 1,
    ]  # fmt: skip

    @query(returns=annotation)
    async def probe(ctx: QueryCtx) -> Any: ...

    fast = fast_check(type(None) if annotation is None else annotation)
    assert fast is not None
    for value in values:
        try:
            probe.validate_returns.__func__(_without_fast_path(probe), value)  # type: ignore[attr-defined]
        except ReturnsValidationError:
            full = False
        else:
            full = True
        assert full or not fast(value), (annotation, value)


def _without_fast_path(fn: Any) -> Any:
    clone = object.__new__(type(fn))
    clone.__dict__.update(fn.__dict__)
    clone._fits = None
    return clone
