"""Reading request bodies safely: a size cap enforced while streaming, strict JSON (the one
decoder the socket uses too: ``convex_json.loads``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from backend.errors import ConvexError, ErrorCode
from backend.values.convex_json import JSONRejected, loads

MAX_BODY_BYTES = 8 * 1024 * 1024


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body. ``PAYLOAD_TOO_LARGE`` past ``max_bytes`` (checked as it
    streams, so a huge body is never held), ``INVALID_ARGUMENT`` for anything not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise ConvexError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"the body must be at most {max_bytes} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ConvexError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"the body must be at most {max_bytes} bytes"
            )
        chunks.append(chunk)
    try:
        return loads(b"".join(chunks))
    except JSONRejected as rejected:
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, f"the body {rejected.reason}") from None
