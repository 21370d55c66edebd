"""One table of small documents, with an index for range reads of one group."""

from pydantic import BaseModel

from backend import define_schema, table


class Item(BaseModel):
    group: str
    n: int
    label: str


schema = define_schema(items=table(Item).index("by_group", "group", "n"))
