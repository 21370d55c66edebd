"""A small app for the tests of calls made in steps: each step leaves a mark."""

from pydantic import BaseModel

from backend import define_schema, table


class Mark(BaseModel):
    call: str
    step: int


class Counter(BaseModel):
    name: str
    value: int


schema = define_schema(
    marks=table(Mark).index("by_call", "call"),
    counters=table(Counter).index("by_name", "name"),
)
