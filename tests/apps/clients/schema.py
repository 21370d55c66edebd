from pydantic import BaseModel

from backend import define_schema, table


class Message(BaseModel):
    channel: str
    body: str


schema = define_schema(messages=table(Message).index("by_channel", "channel"))
