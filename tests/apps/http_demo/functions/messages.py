import json
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from backend import ActionCtx, MutationCtx, QueryCtx, http_action, mutation, query

Documents = list[dict[str, Any]]


@http_action
async def postMessage(ctx: ActionCtx, request: Request) -> Response:
    payload = await request.json()
    await ctx.run_mutation(
        "messages:send",
        {"body": f"Sent via HTTP action: {payload['body']}", "author": payload["author"]},
    )
    return Response(None, status_code=200)


@query
async def list(ctx: QueryCtx) -> Documents:
    return await ctx.db.query("messages").collect()


@mutation
async def send(ctx: MutationCtx, body: str, author: str) -> None:
    await ctx.db.insert("messages", {"body": body, "author": author})


async def query_by_author(ctx: ActionCtx, author_number: str) -> Response:
    messages = await ctx.run_query("messages:list")
    filtered = [
        {"body": m["body"], "author": m["author"]}
        for m in messages
        if m["author"] == f"User {author_number}"
    ]
    return Response(
        json.dumps(filtered), status_code=200, headers={"content-type": "application/json"}
    )


@http_action
async def getByAuthor(ctx: ActionCtx, request: Request) -> Response:
    author_number = request.query_params.get("authorNumber") or request.headers.get("authorNumber")
    if author_number is None:
        return PlainTextResponse(
            "Did not specify authorNumber as query param or header", status_code=400
        )
    return await query_by_author(ctx, author_number)


@http_action
async def getByAuthorPathSuffix(ctx: ActionCtx, request: Request) -> Response:
    path_parts = request.url.path.split("/")
    if len(path_parts) < 3:
        return PlainTextResponse(
            "Missing authorNumber path suffix, URL path should be in the form "
            "/getAuthorMessages/[author]"
        )
    return await query_by_author(ctx, path_parts[-1])
