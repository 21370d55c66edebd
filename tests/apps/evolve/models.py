"""An app that changes: one table of items, in the versions tests deploy one after another."""

from pydantic import BaseModel

from backend import define_schema, table
from backend.schema_definition import Schema, TableDef


class Item(BaseModel):
    name: str
    n: int


class ItemWithOptionalLabel(Item):
    label: str | None = None


class ItemWithLabel(Item):
    label: str


class Tag(BaseModel):
    word: str


def items_v1() -> TableDef:
    return table(Item).index("by_name", "name")


def schema_of(items: TableDef | None, tags: TableDef | None = None) -> Schema:
    tables = {"tags": tags or table(Tag)}
    if items is not None:
        tables["items"] = items
    return define_schema(tables)
