"""File storage over HTTP: the upload URL's ``POST`` and a file URL's ``GET``.

- ``POST /api/storage/upload?token=T`` with the file as the body and its ``Content-Type``
  answers ``{"storageId": id}``, as Convex's upload URL does. The token is checked before the
  body is read (``401 INVALID_TOKEN`` for an unknown, expired or spent one) and spent by the
  transaction that records the file, so of two uploads racing on one URL one records its file
  and the other is refused, its bytes removed. The body streams to the blob store in chunks
  (never whole in memory) and is cut off past ``STORAGE_MAX_BYTES`` with ``413
  PAYLOAD_TOO_LARGE``; a declared ``Content-Length`` past it is refused before any byte is
  read. Nothing is kept of a refused upload.
- ``GET /api/storage/<id>?sig=S`` (the URL ``ctx.storage.get_url`` gives) streams the file
  with its content type, length and an ``ETag`` (its SHA-256), or one byte range of it
  (``Range: bytes=a-b``, 206; a video element asks for them). A bad signature, an id of
  nothing and a deleted file all answer the same 404. Files are the users', not the site's:
  each answer carries ``Content-Security-Policy: sandbox`` so an uploaded HTML or SVG file
  opened at this origin runs no script and reaches no cookie, and ``nosniff``.

Both paths answer any origin without credentials (``cors.py``), as Convex's do: an upload
comes from the app's page with ``fetch``, and an image is shown on any page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.files.blobs import BlobMissing, BlobTooLarge
from backend.files.service import FileStorage, checked_content_type
from backend.http.errors import error_response, refused

log = logging.getLogger("backend.http.storage")

FILE_HEADERS: Final = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "private, no-cache",
}


class StorageRoutes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def files(self) -> FileStorage:
        return self.engine.services.get(FileStorage)

    def routes(self) -> list[Route]:
        return [
            Route("/api/storage/upload", _coded(self.upload), methods=["POST"]),
            Route("/api/storage/{storage_id:str}", _coded(self.serve), methods=["GET"]),
        ]

    async def upload(self, request: Request) -> Response:
        files = self.files
        token = request.query_params.get("token", "")
        try:
            content_type = checked_content_type(request.headers.get("content-type"))
        except ConvexError as error:
            return error_response(error)
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > files.max_bytes):
            return _too_large(files.max_bytes)
        live = await self.engine.system_read(lambda db: files.live_token(db, token))
        if live is None:
            return refused(ErrorCode.INVALID_TOKEN, "The upload URL is invalid or expired")
        try:
            blob = await files.blobs.write(_body(request), files.max_bytes)
        except BlobTooLarge:
            return _too_large(files.max_bytes)
        try:
            storage_id, _ts = await self.engine.system_write(
                lambda db: files.record_upload(db, token, blob, content_type),
                label="_system/storage:upload",
            )
        except BaseException as error:
            await files.blobs.delete(blob.key)  # not recorded: the bytes go too
            if isinstance(error, ConvexError):
                return error_response(error)
            raise
        return JSONResponse({"storageId": storage_id})

    async def serve(self, request: Request) -> Response:
        files = self.files
        storage_id = request.path_params["storage_id"]
        signature = request.query_params.get("sig", "")
        not_found = refused(ErrorCode.NOT_FOUND, "No such file")
        if not files.signature_ok(storage_id, signature):
            return not_found
        found = await self.engine.system_read(lambda db: files.serveable(db, storage_id))
        if found is None:
            return not_found
        etag = f'"{found.sha256}"'
        headers = {**FILE_HEADERS, "ETag": etag, "Accept-Ranges": "bytes"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        wanted = byte_range(request.headers.get("range"), found.size)
        if wanted == UNSATISFIABLE:
            headers["Content-Range"] = f"bytes */{found.size}"
            return Response(status_code=416, headers=headers)
        start, end = wanted if isinstance(wanted, tuple) else (0, found.size)
        try:
            opened = await files.blobs.open(found.key, start, end)
        except BlobMissing:
            log.error("the blob of %s is missing", storage_id)
            return not_found
        headers["Content-Length"] = str(end - start)
        # set as stored: ``media_type=`` would add a charset to a text type
        headers["Content-Type"] = found.content_type or "application/octet-stream"
        if isinstance(wanted, tuple):
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{found.size}"
            return StreamingResponse(opened.chunks, status_code=206, headers=headers)
        return StreamingResponse(opened.chunks, headers=headers)


UNSATISFIABLE: Final = "unsatisfiable"
_RANGE: Final = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` (end exclusive) for one ``Range: bytes=a-b``, ``UNSATISFIABLE``, or
    None to send the whole file (no header, several ranges, or one we do not parse: RFC 9110
    lets a server ignore a Range it does not serve)."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or len(header) > 100:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            return UNSATISFIABLE
        return max(0, size - length), size
    start = int(first)
    if start >= size:
        return UNSATISFIABLE
    end = size if not last else min(int(last) + 1, size)
    if end <= start:
        return None
    return start, end


def _coded(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint``, with a ``ConvexError`` out of it (the database out of reach: 503
    ``UNAVAILABLE``) answered as the table says rather than as a 500."""

    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ConvexError as error:
            return error_response(error)

    return answer


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _too_large(limit: int) -> Response:
    return refused(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"The file is larger than {limit} bytes",
        headers={"connection": "close"},
    )
