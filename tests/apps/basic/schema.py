from typing import Annotated, Literal

from pydantic import BaseModel

from backend import Id, define_schema, table


class Counter(BaseModel):
    name: str
    value: int


class Note(BaseModel):
    author: str
    body: str
    tags: list[str] = []
    meta: dict[str, int] | None = None
    counter: Annotated[str, Id("counters")] | None = None
    priority: Literal["low", "high"] = "low"


schema = define_schema(
    counters=table(Counter).index("by_name", "name"),
    notes=table(Note).index("by_author", "author", "priority"),
)
