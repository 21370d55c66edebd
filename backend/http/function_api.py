"""Convex's HTTP function API: ``POST /api/query``, ``/api/mutation``, ``/api/action``.

Shapes as ``ConvexHttpClient`` expects them (convex-protocol.md, section 12): 200 with
``{status: "success", value, logLines}``, or 560 with ``{status: "error", errorMessage,
errorData?, logLines}`` when the function failed. A request that never reached a function
(bad JSON, too large, a bad token) is a 4xx ``{code, message}``; one that could not reach
the database is ``503 {code: "UNAVAILABLE", message}`` with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from backend.engine import Engine, FunctionFailed
from backend.errors import ConvexError, ErrorCode, http_status
from backend.http.bodies import read_json
from backend.udf.context import ClientInfo, Identity
from backend.values.convex_json import dumps, from_json, to_json

FUNCTION_ERROR_STATUS = 560


def error_response(error: ConvexError) -> JSONResponse:
    data = error.data if isinstance(error.data, dict) else {"code": "ERROR", "message": str(error)}
    response = JSONResponse(
        {"code": data.get("code"), "message": data.get("message")},
        status_code=http_status(error.code),
    )
    if error.code == ErrorCode.UNAVAILABLE:  # 503: say when to come back
        retry_ms = data.get("retryAfterMs")
        seconds = -(-int(retry_ms) // 1000) if isinstance(retry_ms, int) else 1
        response.headers["Retry-After"] = str(max(1, seconds))
    return response


def convex_error_message(data_json: Any) -> str:
    return f"Uncaught ConvexError: {dumps(data_json)}"


def _parse_call(body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "the body must be a JSON object")
    path, args = body.get("path"), body.get("args", [{}])
    if not isinstance(path, str) or not path or len(path) > 256:
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "path must be a function path", path="path")
    if isinstance(args, list) and len(args) == 1:
        args = args[0]
    fmt = body.get("format", "convex_encoded_json")
    if fmt not in ("convex_encoded_json", "json"):
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "unsupported format", path="format")
    decoded = from_json(args)
    if not isinstance(decoded, dict):
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "args must be an object", path="args")
    return path, decoded


async def handle_call(
    request: Request, engine: Engine, kind: str, identity: Identity | None
) -> Response:
    try:
        path, args = _parse_call(await read_json(request))
    except ConvexError as error:
        return error_response(error)
    try:
        if kind == "query":
            value = await engine.run_query(path, args, identity)
        elif kind == "mutation":
            client = ClientInfo(
                ip_address=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
            value = (await engine.run_mutation(path, args, identity, client=client)).value
        else:
            value = await engine.run_action(path, args, identity)
    except ConvexError as error:
        if error.code == ErrorCode.UNAVAILABLE:  # no answer from the function: the store's
            return error_response(error)
        data = to_json(error.data)
        return JSONResponse(
            {
                "status": "error",
                "errorMessage": convex_error_message(data),
                "errorData": data,
                "logLines": [],
            },
            status_code=FUNCTION_ERROR_STATUS,
        )
    except FunctionFailed as failure:
        return JSONResponse(
            {"status": "error", "errorMessage": failure.public_message, "logLines": []},
            status_code=FUNCTION_ERROR_STATUS,
        )
    return JSONResponse({"status": "success", "value": to_json(value), "logLines": []})
