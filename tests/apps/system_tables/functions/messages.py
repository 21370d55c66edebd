from typing import Annotated, Any

from backend import Id, MutationCtx, QueryCtx, mutation, query

Documents = list[dict[str, Any]]


@query
async def list(ctx: QueryCtx) -> Documents:
    messages = await ctx.db.query("messages").collect()
    # an "image" message's body is a storage id
    return [
        {**m, "url": await ctx.storage.get_url(m["body"])} if m["format"] == "image" else m
        for m in messages
    ]


@mutation
async def generateUploadUrl(ctx: MutationCtx) -> str:
    return await ctx.storage.generate_upload_url()


@mutation
async def sendImage(
    ctx: MutationCtx, storageId: Annotated[str, Id("_storage")], author: str
) -> None:
    await ctx.db.insert("messages", {"body": storageId, "author": author, "format": "image"})
    await ctx.db.insert("file_uploads", {"author": author, "upload_id": storageId})


@mutation
async def sendMessage(ctx: MutationCtx, body: str, author: str) -> None:
    await ctx.db.insert("messages", {"body": body, "author": author, "format": "text"})


@mutation
async def scheduleMessage(ctx: MutationCtx, delay: float, body: str, author: str) -> str:
    job_id: str = await ctx.scheduler.run_after(
        delay, sendMessage, {"body": body, "author": author}
    )
    return job_id
