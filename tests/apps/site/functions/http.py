import json

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from backend import ActionCtx, HttpRouter, http_action


@http_action
async def whoami(ctx: ActionCtx, request: Request) -> Response:
    identity = await ctx.auth.get_user_identity()
    return JSONResponse({"subject": identity.subject if identity else None})


@http_action
async def boom(ctx: ActionCtx, request: Request) -> Response:
    raise RuntimeError("the secret detail of a bug")


@http_action
async def not_a_response(ctx: ActionCtx, request: Request) -> Response:
    return {"oops": True}  # type: ignore[return-value]


@http_action
async def echo(ctx: ActionCtx, request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"bytes": len(body), "method": request.method})


@http_action
async def stream_count(ctx: ActionCtx, request: Request) -> Response:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return JSONResponse({"bytes": total})


@http_action
async def files(ctx: ActionCtx, request: Request) -> Response:
    return PlainTextResponse(request.url.path.removeprefix("/files/"))


@http_action
async def deep_files(ctx: ActionCtx, request: Request) -> Response:
    return PlainTextResponse("deep:" + request.url.path)


@http_action
async def cors_preflight(ctx: ActionCtx, request: Request) -> Response:
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": "https://app.example",
            "Access-Control-Allow-Methods": "POST",
        },
    )


@http_action
async def add_note(ctx: ActionCtx, request: Request) -> Response:
    payload = json.loads(await request.body())
    await ctx.run_mutation("notes:add", {"text": payload["text"]})
    notes = await ctx.run_query("notes:list")
    return JSONResponse({"count": len(notes)})


@http_action
async def upload(ctx: ActionCtx, request: Request) -> Response:
    storage_id = await ctx.storage.store(await request.body(), request.headers.get("content-type"))
    return JSONResponse({"storageId": storage_id})


http = HttpRouter()
http.route(path="/whoami", method="GET", handler=whoami)
http.route(path="/boom", method="GET", handler=boom)
http.route(path="/notAResponse", method="GET", handler=not_a_response)
http.route(path="/echo", method="POST", handler=echo)
http.route(path="/echo", method="PUT", handler=echo)
http.route(path="/stream", method="POST", handler=stream_count)
http.route(path_prefix="/files/", method="GET", handler=files)
http.route(path_prefix="/files/deep/", method="GET", handler=deep_files)
http.route(path="/notes", method="OPTIONS", handler=cors_preflight)
http.route(path="/notes", method="POST", handler=add_note)
http.route(path="/upload", method="POST", handler=upload)
