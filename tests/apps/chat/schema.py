"""Convex's pagination demo: one table of messages, listed newest first, a page at a time."""

from pydantic import BaseModel

from backend import define_schema, table


class Message(BaseModel):
    author: str
    body: str


schema = define_schema(messages=table(Message))
