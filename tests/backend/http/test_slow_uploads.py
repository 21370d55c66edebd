"""A file upload's body gets its own, longer deadline; every other body keeps the short one."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message

from backend.http.request_body import RequestBodyGuard


async def read_body(scope: Any, receive: Any, send: Any) -> None:
    body = await Request(scope, receive).body()
    await JSONResponse({"bytes": len(body)})(scope, receive, send)


async def send_slowly(guard: RequestBodyGuard, path: str) -> int:
    chunks = [b"x" * 10, b"y" * 10]

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.3)
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}
    await guard(scope, receive, send)
    return int(next(m for m in sent if m["type"] == "http.response.start")["status"])


async def test_an_upload_may_take_longer_than_any_other_body() -> None:
    guard = RequestBodyGuard(read_body, timeout=0.4, slow_paths={"/api/storage/": 30.0})
    assert await send_slowly(guard, "/api/mutation") == 408
    assert await send_slowly(guard, "/api/storage/upload") == 200
