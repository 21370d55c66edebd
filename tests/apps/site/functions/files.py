from typing import Annotated, Any

from backend import ActionCtx, ConvexError, Id, MutationCtx, QueryCtx, action, mutation, query

StorageId = Annotated[str, Id("_storage")]


@mutation
async def upload_url(ctx: MutationCtx) -> str:
    return await ctx.storage.generate_upload_url()


@mutation
async def upload_url_then_fail(ctx: MutationCtx) -> str:
    await ctx.storage.generate_upload_url()
    raise ConvexError("NOPE", "rolled back")


@action
async def upload_url_from_action(ctx: ActionCtx) -> str:
    return await ctx.storage.generateUploadUrl()


@query
async def url(ctx: QueryCtx, storageId: str) -> str | None:
    return await ctx.storage.get_url(storageId)


@query
async def metadata(ctx: QueryCtx, storageId: str) -> dict[str, Any] | None:
    return await ctx.db.system.get(storageId)


@query
async def all_files(ctx: QueryCtx) -> list[dict[str, Any]]:
    return await ctx.db.system.query("_storage").collect()


@mutation
async def remove(ctx: MutationCtx, storageId: str) -> None:
    await ctx.storage.delete(storageId)


@mutation
async def remove_then_fail(ctx: MutationCtx, storageId: StorageId) -> None:
    await ctx.storage.delete(storageId)
    raise ConvexError("NOPE", "rolled back")


@action
async def store(ctx: ActionCtx, text: str, contentType: str | None = None) -> str:
    return await ctx.storage.store(text.encode(), contentType)


@action
async def read(ctx: ActionCtx, storageId: str) -> str | None:
    data = await ctx.storage.get(storageId)
    return None if data is None else data.decode()


@action
async def remove_from_action(ctx: ActionCtx, storageId: str) -> None:
    await ctx.storage.delete(storageId)


@action
async def url_from_action(ctx: ActionCtx, storageId: str) -> str | None:
    return await ctx.storage.get_url(storageId)
