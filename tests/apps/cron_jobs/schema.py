"""Convex's cron-jobs demo (get-convex/convex-demos, ``cron-jobs``): the tutorial's chat, whose
messages a cron clears every minute. Its ``convex/`` folder, function by function, in Python."""

from pydantic import BaseModel

from backend import define_schema, table


class Message(BaseModel):
    author: str
    body: str


schema = define_schema(messages=table(Message))
