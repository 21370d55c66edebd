from typing import Annotated, Any

from backend import Id, MutationCtx, QueryCtx, mutation, query

Documents = list[dict[str, Any]]


@query
async def list(ctx: QueryCtx) -> Documents:
    messages = await ctx.db.query("messages").collect()
    return [
        {
            **message,
            # If the message is an "image" its `body` is an `Id<"_storage">`
            **(
                {"url": await ctx.storage.get_url(message["body"])}
                if message["format"] == "image"
                else {}
            ),
        }
        for message in messages
    ]


@mutation
async def generateUploadUrl(ctx: MutationCtx) -> str:
    return await ctx.storage.generate_upload_url()


@mutation
async def sendImage(
    ctx: MutationCtx, storageId: Annotated[str, Id("_storage")], author: str
) -> None:
    await ctx.db.insert("messages", {"body": storageId, "author": author, "format": "image"})


@mutation
async def sendMessage(ctx: MutationCtx, body: str, author: str) -> None:
    await ctx.db.insert("messages", {"body": body, "author": author, "format": "text"})
