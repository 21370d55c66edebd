"""An app whose functions use every kind of annotation the typed client API maps."""

from typing import Annotated, Literal

from pydantic import BaseModel

from backend import Id, define_schema, table


class Channel(BaseModel):
    name: str
    topic: str | None = None


class Message(BaseModel):
    channel: Annotated[str, Id("channels")]
    author: str
    body: str
    kind: Literal["text", "image"] = "text"
    meta: dict[str, str] | None = None


schema = define_schema(
    channels=table(Channel),
    messages=table(Message).index("by_channel", "channel"),
)
