"""A blob store of another kind, plugged in by ``STORAGE_BACKEND`` alone: files on local disk
that keep a count of what was asked of them (a stand-in for S3 in configuration tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from backend.config import Settings
from backend.files.blobs import BlobStore, LocalDiskBlobs, OpenBlob, WrittenBlob


class CountingBlobs(BlobStore):
    def __init__(self, root: Path) -> None:
        self.inner = LocalDiskBlobs(root)
        self.writes = 0
        self.opens = 0

    async def write(self, chunks: AsyncIterator[bytes], max_bytes: int) -> WrittenBlob:
        self.writes += 1
        return await self.inner.write(chunks, max_bytes)

    async def open(self, key: str, start: int = 0, end: int | None = None) -> OpenBlob:
        self.opens += 1
        return await self.inner.open(key, start, end)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def keys_older_than(self, moment: datetime) -> AsyncIterator[str]:
        async for key in self.inner.keys_older_than(moment):
            yield key


def make(settings: Settings) -> CountingBlobs:
    return CountingBlobs(Path(settings.storage_dir) / "counted")


def not_a_store(settings: Settings) -> object:
    return object()
