"""A probe app for HTTP actions and file storage: routes that show who called, fail, read
bodies and prefixes; functions that use every part of ``ctx.storage``."""

from pydantic import BaseModel

from backend import define_schema, table


class Note(BaseModel):
    text: str


schema = define_schema(notes=table(Note))
