"""Python annotations as the TypeScript Convex's codegen would write for the same validators."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

import pytest
from pydantic import BaseModel, Field

from backend import Id, Int64
from backend.codegen.typescript import field_paths, ts_type


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: float
    y: float


class Shape(BaseModel):
    owner: Annotated[str, Id("users")]
    points: list[Point]
    label: str | None = None
    kind: Literal["polygon", "line"] = "polygon"
    alias_me: int = Field(default=0, alias="aliasMe")


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


class Movie(TypedDict):
    title: str
    year: NotRequired[int]


@dataclass
class Pair:
    left: str
    right: int = 0
    extra: list[str] = field(default_factory=list)


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (str, "string"),
        (int, "number"),
        (float, "number"),
        (bool, "boolean"),
        (bytes, "ArrayBuffer"),
        (Int64, "bigint"),
        (None, "null"),
        (type(None), "null"),
        (Any, "any"),
        (object, "any"),
        (Annotated[str, Id("orgs")], 'Id<"orgs">'),
        (Annotated[int, "unrelated metadata"], "number"),
        (Literal["a", "b"], '"a" | "b"'),
        (Literal[1, True, None], "1 | true | null"),
        (Literal['say "hi"'], '"say \\"hi\\""'),
        (str | None, "string | null"),
        (Optional[int], "number | null"),  # noqa: UP045 - the old spelling maps the same
        (Union[str, int], "string | number"),  # noqa: UP007
        (int | Any, "any"),
        (list[str], "Array<string>"),
        (list[Annotated[str, Id("orgs")]], 'Array<Id<"orgs">>'),
        (set[int], "Array<number>"),
        (tuple[int, ...], "Array<number>"),
        (tuple[str, bool], "[string, boolean]"),
        (list, "Array<any>"),
        (dict, "Record<string, any>"),
        (dict[str, int], "Record<string, number>"),
        (dict[str, Any], "Record<string, any>"),
        (list[dict[str, list[int | None]]], "Array<Record<string, Array<number | null>>>"),
        (Colour, '"red" | "blue"'),
        (Point, "{ x: number; y: number }"),
        (Movie, "{ title: string; year?: number }"),
        (Pair, "{ left: string; right?: number; extra?: Array<string> }"),
        (complex, "any"),
    ],
)
def test_each_python_type_maps_to_its_typescript(hint: Any, expected: str) -> None:
    assert ts_type(hint) == expected


def test_a_model_has_its_nested_models_ids_literals_and_optional_fields() -> None:
    assert ts_type(Shape) == (
        '{ owner: Id<"users">; points: Array<{ x: number; y: number }>; '
        'label?: string | null; kind?: "polygon" | "line"; aliasMe?: number }'
    )


def test_a_model_that_contains_itself_is_any_below_its_first_level() -> None:
    assert ts_type(Tree) == "{ name: string; children?: Array<any> }"
    assert ts_type(list[Tree]) == "Array<{ name: string; children?: Array<any> }>"


def test_keys_that_are_not_identifiers_are_quoted() -> None:
    class Odd(BaseModel):
        plain: str
        dashed: str = Field(alias="with-dash")

    assert ts_type(Odd) == '{ plain: string; "with-dash": string }'


def test_field_paths_are_convexs_nested_and_record_ones() -> None:
    class Inner(BaseModel):
        name: str
        tags: dict[str, int] = {}

    class Outer(BaseModel):
        inner: Inner
        maybe: Inner | None = None
        plain: int

    paths = [".".join(p) for p in field_paths(Outer) if p]
    assert paths == [
        "inner",
        "inner.name",
        "inner.tags",
        "inner.tags.${string}",
        "maybe",
        "maybe.name",
        "maybe.tags",
        "maybe.tags.${string}",
        "plain",
    ]
    assert [p for p in field_paths(Tree) if p] == [("name",), ("children",)]
