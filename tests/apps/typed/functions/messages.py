import builtins
from typing import Annotated, Any, Literal

from pydantic import BaseModel

from backend import Id, Int64, MutationCtx, QueryCtx, internal_mutation, mutation, query


class Attachment(BaseModel):
    url: str
    size: int


class Draft(BaseModel):
    channel: Annotated[str, Id("channels")]
    body: str
    attachments: list[Attachment] = []
    tags: dict[str, str] | None = None


class Sent(BaseModel):
    id: Annotated[str, Id("messages")]
    words: int


@query
async def list(
    ctx: QueryCtx, channel: Annotated[str, Id("channels")], limit: int = 20
) -> builtins.list[dict[str, Any]]:
    return []


@mutation
async def send(ctx: MutationCtx, draft: Draft) -> Sent:
    raise NotImplementedError


@mutation
async def react(
    ctx: MutationCtx,
    message: Annotated[str, Id("messages")],
    emoji: Literal["+1", "heart"],
    count: Int64 | None = None,
    flags: tuple[bool, str] = (False, ""),
) -> Annotated[str, Id("messages")] | None:
    return None


@internal_mutation
async def purge(ctx: MutationCtx, before: float) -> int:
    return 0
