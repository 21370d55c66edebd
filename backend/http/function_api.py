"""Convex's HTTP function API: ``POST /api/query``, ``/api/mutation``, ``/api/action``.

The answers are shaped as Convex's own backend shapes them, which is what both official HTTP
clients read (the JS ``ConvexHttpClient`` and the Python one):

- The function ran: **200** with ``{status: "success", value}``, or, when it failed, **200**
  with ``{status: "error", errorMessage, errorData?}``. ``errorData`` is present exactly for a
  ConvexError (an unknown function and bad arguments are ConvexErrors here, with ``code``
  ``NOT_FOUND`` / ``INVALID_ARGUMENT``); ``logLines`` appears only when there are lines. A
  function failure is not an HTTP failure: the Python client calls ``raise_for_status()``
  before it looks at ``status``, so a 5xx would hide the error data from it. (The JS client
  also accepts 560 for this; Convex's backend does not send it.)
- Numbers are written as Convex's backend writes its float64s, always with a fraction
  (``1.0``): the Python client refuses a JSON integer in a value (``Bad JSON value: 1``), and
  to JavaScript ``1.0`` and ``1`` are the same number. 64-bit integers still travel as
  ``{"$integer": ...}``.
- The request never reached a function (a bad body, a bad token, an outage): a 4xx or 5xx
  with ``{code, message}`` (an outage is ``503 UNAVAILABLE`` with ``Retry-After``), which the
  Python client reports as ``"<status> <code>: <message>"`` and the JS client as an ``Error``
  carrying the body.

Both shapes, and their wording (the socket's own), are built in ``errors.py``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.http.bodies import read_json
from backend.http.errors import error_response, function_failure, numbers_as_floats
from backend.udf import logs
from backend.udf.context import ClientInfo, Identity
from backend.values.convex_json import from_json, to_json


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
    with logs.capture() as captured:
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
        except Exception as error:
            return function_failure(error, captured.lines)
    body: dict[str, Any] = {"status": "success", "value": numbers_as_floats(to_json(value))}
    if captured.lines:
        body["logLines"] = captured.lines
    return JSONResponse(body)
