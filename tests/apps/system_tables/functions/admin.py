from typing import Annotated, Any

from backend import Id, MutationCtx, QueryCtx, mutation, query


@mutation
async def cancelMessage(
    ctx: MutationCtx, jobId: Annotated[str, Id("_scheduled_functions")]
) -> None:
    await ctx.scheduler.cancel(jobId)


@query
async def listScheduledSends(ctx: QueryCtx) -> list[dict[str, Any]]:
    return await ctx.db.system.query("_scheduled_functions").collect()


@query
async def listFiles(ctx: QueryCtx) -> list[dict[str, Any]]:
    """Every uploaded file's metadata from ``_storage``, with who uploaded it."""
    files = []
    for upload in await ctx.db.query("file_uploads").collect():
        metadata = await ctx.db.system.get(upload["upload_id"])
        if metadata is not None:
            files.append({**metadata, "author": upload["author"]})
    return files


@query
async def getFileUrl(ctx: QueryCtx, id: Annotated[str, Id("_storage")]) -> str | None:
    return await ctx.storage.get_url(id)
