"""One table of small documents: a body and a counter that ``docs:touch`` raises."""

from pydantic import BaseModel

from backend import define_schema, table


class Doc(BaseModel):
    body: str
    n: int


schema = define_schema(docs=table(Doc))
