"""Convex's file-storage demo (get-convex/convex-demos, ``file-storage``): the tutorial's chat,
where a message is text or an image uploaded to file storage. Its ``convex/`` folder, function
by function, in Python."""

from typing import Literal

from pydantic import BaseModel

from backend import define_schema, table


class Message(BaseModel):
    author: str
    body: str  # the text, or for an image the file's storage id
    format: Literal["text", "image"]


schema = define_schema(messages=table(Message))
