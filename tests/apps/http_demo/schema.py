"""Convex's http demo (get-convex/convex-demos, ``http``): the tutorial's chat, whose messages
can also be sent and read over HTTP actions at the site origin. Its ``convex/`` folder,
function by function, in Python."""

from pydantic import BaseModel

from backend import define_schema, table


class Message(BaseModel):
    author: str
    body: str


schema = define_schema(messages=table(Message))
