"""Convex's system-tables demo (get-convex/convex-demos, ``system-tables``): a chat whose
messages can be sent later (``/delay 10 hello``), with an admin page over the scheduled sends
(``admin:listScheduledSends`` reads ``_scheduled_functions`` through ``ctx.db.system``) that
cancels them, and lists the uploaded images (``admin:listFiles`` joins ``file_uploads`` with
their ``_storage`` metadata). Its ``convex/`` folder, function by function, in Python."""

from typing import Annotated

from pydantic import BaseModel

from backend import Id, define_schema, table


class FileUpload(BaseModel):
    author: str
    upload_id: Annotated[str, Id("_storage")]


class Message(BaseModel):
    author: str
    body: str
    format: str


schema = define_schema(file_uploads=table(FileUpload), messages=table(Message))
