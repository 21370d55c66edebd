"""Every HTTP error answer, built in one place from the error table (``backend/errors.py``).

Two shapes, as Convex's backend and Better Auth answer them:

- **Refused**: the request never reached a function, or an auth endpoint refused it (a bad
  body or token, an unknown function, a wrong password, the database out of reach, a foreign
  ``Host``). The code's status from the table, and ``{code, message}``, with
  ``retryAfterMs`` when the error carries one, and then ``Retry-After`` too (whole seconds,
  rounded up: waiting that long is always enough). ``UNAVAILABLE`` always says when to
  come back. ``refused`` answers an ``ErrorCode`` directly, ``error_response`` a
  ``ConvexError``; the middleware guards (hosts, request bodies) use them too.
- **A function that ran and failed**: 200 with ``{status: "error", errorMessage,
  errorData?}``, worded as on the socket (``backend/failures.py``); see
  ``function_api.py`` for why it is not an HTTP failure. An exception the engine did not
  expect answers ``500 INTERNAL`` with the socket's words, "Server Error", and is logged.

Starlette's own refusals (no such route, a method a route does not take) are coded the same
way under ``/api/`` (``http_exception``, the app's handler for them); elsewhere, where a
browser asks for a page, they stay Starlette's plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from backend.errors import ConvexError, ErrorCode, http_status
from backend.failures import failure_of

log = logging.getLogger("backend.http")

FUNCTION_ERROR_STATUS = 200
"""The status of a function that ran and failed (the body says ``status: "error"``)."""
UNAVAILABLE_RETRY_SECONDS = 1
"""``Retry-After`` of an outage whose error does not say how long to wait."""


def _retry_after_seconds(retry_after_ms: float) -> str:
    return str(max(1, -(-int(retry_after_ms) // 1000)))


def refused(
    code: ErrorCode | str,
    message: str,
    *,
    retry_after_ms: float | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A refusal with ``code``: its status from the table and ``{code, message, **extra}``
    (``retryAfterMs`` and ``Retry-After`` when ``retry_after_ms`` is given)."""
    body: dict[str, Any] = {"code": str(code), "message": message, **extra}
    answer_headers = dict(headers or {})
    if retry_after_ms is not None:
        body["retryAfterMs"] = retry_after_ms
        answer_headers["Retry-After"] = _retry_after_seconds(retry_after_ms)
    elif code == ErrorCode.UNAVAILABLE:
        answer_headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
    return JSONResponse(body, status_code=http_status(str(code)), headers=answer_headers)


def error_response(error: ConvexError, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The refusal a ``ConvexError`` makes (see the module's docstring)."""
    data = error.data if isinstance(error.data, dict) else {"code": "ERROR", "message": str(error)}
    retry = data.get("retryAfterMs")
    retry_after_ms = (
        retry if isinstance(retry, int | float) and not isinstance(retry, bool) else None
    )
    code, message = data.get("code"), data.get("message")
    return refused(
        code if isinstance(code, str) else "ERROR",
        message if isinstance(message, str) else str(error),
        retry_after_ms=retry_after_ms,
        headers=headers,
    )


def numbers_as_floats(data: Any) -> Any:
    """Convex JSON with every plain integer written as a float, as Convex's backend does."""
    if isinstance(data, bool) or data is None or isinstance(data, str | float):
        return data
    if isinstance(data, int):
        return float(data)
    if isinstance(data, list):
        return [numbers_as_floats(item) for item in data]
    if isinstance(data, dict):
        return {key: numbers_as_floats(value) for key, value in data.items()}
    return data


def function_failure(error: BaseException, log_lines: list[str] | None = None) -> JSONResponse:
    """The answer of a function call that raised ``error`` (see the module's docstring), with
    the function's log lines when it wrote any."""
    if isinstance(error, ConvexError) and error.code == ErrorCode.UNAVAILABLE:
        return error_response(error)  # no answer from the function: the store's
    failure = failure_of(error)
    if not failure.expected:
        log.error("function call failed", exc_info=error)
        return refused(ErrorCode.INTERNAL, failure.message)
    body: dict[str, Any] = {"status": "error", "errorMessage": failure.message}
    if failure.has_data:
        body["errorData"] = numbers_as_floats(failure.data)
    if log_lines:
        body["logLines"] = log_lines
    return JSONResponse(body, status_code=FUNCTION_ERROR_STATUS)


# Starlette's refusals, by status, as the table's codes.
_STARLETTE_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


async def http_exception(request: Request, exc: Exception) -> Response:
    """The app's handler for Starlette's ``HTTPException``: coded under ``/api/``."""
    assert isinstance(exc, HTTPException)
    code = _STARLETTE_CODES.get(exc.status_code)
    if code is not None and request.url.path.startswith("/api/"):
        return refused(code, exc.detail, headers=exc.headers)
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


__all__ = [
    "FUNCTION_ERROR_STATUS",
    "error_response",
    "function_failure",
    "http_exception",
    "numbers_as_floats",
    "refused",
]
