"""Argument validation: ``INVALID_ARGUMENT`` with the field at fault, and Convex's message."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel

from backend import Id, MutationCtx, mutation
from backend.errors import ConvexError
from backend.udf.validation import integral_floats_as_ints
from backend.values.ids import make_id


class Item(BaseModel):
    sku: str
    qty: int


@mutation
async def order(
    ctx: MutationCtx,
    orgId: Annotated[str, Id("orgs")],
    items: list[Item],
    note: str | None = None,
    priority: Literal["low", "high"] = "low",
    password: str = "",
) -> None: ...


order.path = "orders:place"
ORG = make_id("orgs", bytes(range(16)))


def refusal(args: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ConvexError) as info:
        order.validate_args(args)
    data: dict[str, Any] = info.value.data
    assert data["code"] == "INVALID_ARGUMENT"
    return data


def test_a_wrong_type_names_function_argument_expected_and_received() -> None:
    data = refusal({"orgId": ORG, "items": [], "priority": "urgent"})
    assert data["path"] == "priority"
    assert data["message"] == (
        "ArgumentValidationError: Value does not match validator.\n"
        "Path: .priority\n"
        'Value: "urgent"\n'
        'Validator: v.union(v.literal("low"), v.literal("high"))\n'
        "Function: orders:place"
    )
    data = refusal({"orgId": "not-an-id", "items": []})
    assert data["path"] == "orgId"
    assert 'Validator: v.id("orgs")' in data["message"]


def test_nested_value_message_reads_like_convex() -> None:
    @mutation
    async def place(ctx: MutationCtx, items: list[Item]) -> None: ...

    place.path = "orders:place"
    with pytest.raises(ConvexError) as info:
        place.validate_args({"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "two"}]})
    assert info.value.data["path"] == "items.1.qty"
    assert info.value.data["message"] == (
        "ArgumentValidationError: Value does not match validator.\n"
        "Path: .items[1].qty\n"
        'Value: "two"\n'
        "Validator: v.number() (an integer)\n"
        "Function: orders:place"
    )


def test_a_missing_argument_shows_the_object_and_its_validator() -> None:
    data = refusal({"items": []})
    assert data["path"] == "orgId"
    assert data["message"].startswith(
        "ArgumentValidationError: Object is missing the required field `orgId`. Consider "
        "wrapping the field validator in `v.optional(...)` if this is expected.\n"
    )
    assert 'Object: {"items":[]}\n' in data["message"]
    assert (
        'Validator: v.object({orgId: v.id("orgs"), items: v.array(v.object({sku: v.string(), '
        "qty: v.number() (an integer)})), note: v.optional(v.union(v.string(), v.null())), "
        'priority: v.optional(v.union(v.literal("low"), v.literal("high"))), '
        "password: v.optional(v.string())})"
    ) in data["message"]
    assert data["message"].endswith("\nFunction: orders:place")


def test_an_extra_argument_is_named() -> None:
    data = refusal({"orgId": ORG, "items": [], "colour": "red"})
    assert data["path"] == "colour"
    assert data["message"].startswith(
        "ArgumentValidationError: Object contains extra field `colour` that is not in the "
        "validator.\n"
    )


def test_a_secret_argument_is_never_echoed() -> None:
    data = refusal({"items": [], "password": "hunter2-hunter2", "extra": 1})
    assert "hunter2" not in data["message"]
    assert '"password":"<redacted>"' in data["message"]
    data = refusal({"orgId": ORG, "items": [], "password": 123456})
    assert "123456" not in data["message"]


def test_integral_floats_from_the_rust_clients_are_integers() -> None:
    # The Python client sends 5 as 5.0; an int parameter must take it, a float keep its value.
    assert integral_floats_as_ints({"a": 5.0, "b": [2.0, 2.5], "c": -0.0, "d": 1e300}) == {
        "a": 5,
        "b": [2, 2.5],
        "c": -0.0,
        "d": 1e300,
    }
    assert str(integral_floats_as_ints(-0.0)) == "-0.0"

    @mutation
    async def take(ctx: MutationCtx, n: int, x: float) -> None: ...

    assert take.validate_args({"n": 5.0, "x": 2.0}) == ((), {"n": 5, "x": 2.0})
