"""``ctx.storage``: file storage as a function sees it, as in Convex.

- in a query: ``await ctx.storage.get_url(storage_id)``: a URL that serves the file with its
  content type, or None when there is no such file (the read joins the query's read set, so a
  live query re-runs when the file is deleted);
- in a mutation, also ``await ctx.storage.generate_upload_url()``: a short-lived URL to
  ``POST`` one file to (the answer is ``{"storageId": ...}``), and
  ``await ctx.storage.delete(storage_id)``;
- in an action, all of these, and ``await ctx.storage.store(data, content_type)`` (bytes, or
  an async iterable of chunks) returning the new storage id, and
  ``await ctx.storage.get(storage_id)``: the bytes, or None.

Convex's camelCase names (``getUrl``, ``generateUploadUrl``) work too. A storage id is an id
of the ``_storage`` table (``Annotated[str, Id("_storage")]`` in an argument); its metadata
is readable with ``ctx.db.system.get(storage_id)``. Anything that is not a storage id is
``INVALID_ARGUMENT``; ``delete`` of a missing file is ``NOT_FOUND``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING

from backend.transactions.transaction import SystemDatabase, Transaction

if TYPE_CHECKING:
    from backend.engine import Engine
    from backend.files.service import FileStorage


def _service(engine: Engine) -> FileStorage:
    from backend.files.service import FileStorage

    return engine.services.get(FileStorage)


class StorageReader:
    """``ctx.storage`` in a query."""

    def __init__(self, engine: Engine, txn: Transaction) -> None:
        self._engine = engine
        self._txn = txn

    async def get_url(self, storage_id: str) -> str | None:
        """A URL serving the file, or None when it does not exist. ``INVALID_ARGUMENT`` for
        an id that is not a storage id."""
        return await _service(self._engine).url_of(SystemDatabase(self._txn), storage_id)

    getUrl = get_url


class StorageWriter(StorageReader):
    """``ctx.storage`` in a mutation."""

    async def generate_upload_url(self) -> str:
        """A URL, valid for an hour, to ``POST`` one file to; the answer is
        ``{"storageId": id}``. Nothing is issued if the mutation fails."""
        return await _service(self._engine).issue_upload_url(SystemDatabase(self._txn))

    generateUploadUrl = generate_upload_url

    async def delete(self, storage_id: str) -> None:
        """Delete the file (its row now, its bytes once the mutation commits). ``NOT_FOUND``
        if there is no such file."""
        await _service(self._engine).delete(self._engine, SystemDatabase(self._txn), storage_id)


async def _as_chunks(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), 1024 * 1024):
            yield bytes(view[start : start + 1024 * 1024])
        return
    async for chunk in data:
        if not isinstance(chunk, bytes | bytearray):
            raise TypeError("ctx.storage.store takes bytes or an async iterable of bytes")
        yield bytes(chunk)


class StorageActions:
    """``ctx.storage`` in an action: each call is a transaction of its own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def generate_upload_url(self) -> str:
        """A URL, valid for an hour and for one upload, to ``POST`` one file to; the answer is
        ``{"storageId": id}``. Issued in a transaction of its own."""
        service = _service(self._engine)
        url, _ts = await self._engine.system_write(
            service.issue_upload_url, label="_system/storage:generateUploadUrl"
        )
        return url

    generateUploadUrl = generate_upload_url

    async def get_url(self, storage_id: str) -> str | None:
        """A URL serving the file, or None when it does not exist. ``INVALID_ARGUMENT`` for
        an id that is not a storage id."""
        service = _service(self._engine)
        return await self._engine.system_read(lambda db: service.url_of(db, storage_id))

    getUrl = get_url

    async def delete(self, storage_id: str) -> None:
        """Delete the file (its row at once, its bytes right after). ``NOT_FOUND`` if there
        is no such file; ``INVALID_ARGUMENT`` for an id that is not a storage id."""
        service = _service(self._engine)
        await self._engine.system_write(
            lambda db: service.delete(self._engine, db, storage_id),
            label="_system/storage:delete",
        )

    async def store(
        self, data: bytes | AsyncIterable[bytes], content_type: str | None = None
    ) -> str:
        """Store ``data`` as a new file; its storage id. ``PAYLOAD_TOO_LARGE`` past the
        server's size limit (nothing is kept)."""
        from backend.errors import ConvexError, ErrorCode
        from backend.files.blobs import BlobTooLarge
        from backend.files.service import checked_content_type

        service = _service(self._engine)
        content_type = checked_content_type(content_type)
        try:
            blob = await service.blobs.write(_as_chunks(data), service.max_bytes)
        except BlobTooLarge as exc:
            raise ConvexError(ErrorCode.PAYLOAD_TOO_LARGE, str(exc)) from None
        storage_id, _ts = await self._engine.system_write(
            lambda db: service.record_upload(db, None, blob, content_type),
            label="_system/storage:store",
        )
        return storage_id

    async def get(self, storage_id: str) -> bytes | None:
        """The file's bytes, or None when it does not exist (read whole: for a large file,
        hand out ``get_url`` instead)."""
        from backend.files.blobs import BlobMissing

        service = _service(self._engine)

        async def blob_key(db: SystemDatabase) -> str | None:
            row = await service.stored(db, storage_id)  # INVALID_ARGUMENT for a foreign id
            return None if row is None else str(row["blobKey"])

        key = await self._engine.system_read(blob_key)
        if key is None:
            return None
        try:
            opened = await service.blobs.open(key)
        except BlobMissing:  # deleted since the read
            return None
        return b"".join([chunk async for chunk in opened.chunks])
