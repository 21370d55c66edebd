from pydantic import BaseModel

from backend import define_schema, table


class Note(BaseModel):
    owner: str
    body: str


schema = define_schema(notes=table(Note).index("by_owner", "owner"))
