"""Where file bytes live: the ``BlobStore`` interface and its local-disk implementation.

The engine keeps a file's metadata in the ``_storage`` table and its bytes in a blob store,
under a key it picks (random, never an app's string). A blob store does four things, all
streamed, so that no file is ever held in memory whole:

- ``write(chunks, max_bytes)``: take the bytes in, under a fresh key, hashing and counting as
  they go; past ``max_bytes`` it stops and leaves nothing (``BlobTooLarge``);
- ``open(key, start, end)``: the bytes back (or a range of them), as an async iterator of
  chunks, with the whole size;
- ``delete(key)``: gone (a missing key is not an error);
- ``keys_older_than(moment)``: every key written before ``moment``, for the sweeper.

A blob becomes visible under its key only once it is complete (the local store writes under
a temporary name and renames), and only then does the engine commit its ``_storage`` row. So a
row always has its blob; a crash between the two leaves a blob with no row, which the sweeper
(``sweeper.py``) removes once it is older than a grace period. An S3-compatible store fits the
same four methods (a multipart upload, ``GetObject``, ``DeleteObject``, ``ListObjectsV2``
with ``LastModified``); see the README.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import anyio

CHUNK_BYTES = 1024 * 1024
"""How much a store reads or writes per call to the disk."""


class BlobTooLarge(Exception):
    """The bytes went past the size limit; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


class BlobMissing(Exception):
    """No blob under that key."""


@dataclass(frozen=True)
class WrittenBlob:
    key: str
    size: int
    sha256: str  # hex, as Convex's ``_storage.sha256`` is base64 of the same digest


@dataclass(frozen=True)
class OpenBlob:
    size: int
    chunks: AsyncIterator[bytes]


class BlobStore(ABC):
    """The contract every store of file bytes fulfils (see the module's docstring)."""

    @abstractmethod
    async def write(self, chunks: AsyncIterator[bytes], max_bytes: int) -> WrittenBlob: ...

    @abstractmethod
    async def open(self, key: str, start: int = 0, end: int | None = None) -> OpenBlob:
        """The blob's bytes from ``start`` to ``end`` (exclusive; None: to the end), and its
        whole size; raises ``BlobMissing``."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    def keys_older_than(self, moment: datetime) -> AsyncIterator[str]: ...

    async def remove_stale_parts(self, moment: datetime) -> int:
        """Drop unfinished writes begun before ``moment`` (a process killed mid-upload;
        for S3, an aborted multipart upload); returns how many. None by default."""
        return 0


def new_key() -> str:
    """A blob key: 128 random bits in hex (the key never reaches a client)."""
    return secrets.token_hex(16)


def _valid_key(key: str) -> bool:
    return len(key) == 32 and all(c in "0123456789abcdef" for c in key)


class LocalDiskBlobs(BlobStore):
    """Blobs as files under ``root``: ``root/ab/abcdef...`` for key ``abcdef...``, written
    first under ``root/tmp/`` and renamed into place once complete (a rename on one file
    system is atomic, so a blob is never seen half written)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDiskBlobs({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if not _valid_key(key):  # keys are ours, but a path is never built from anything else
            raise BlobMissing(key)
        return self.root / key[:2] / key

    async def write(self, chunks: AsyncIterator[bytes], max_bytes: int) -> WrittenBlob:
        key = new_key()
        tmp_dir = self.root / "tmp"
        await anyio.to_thread.run_sync(lambda: tmp_dir.mkdir(parents=True, exist_ok=True))
        tmp = tmp_dir / f"{key}.part"
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_bytes = 0

        def put(out: BinaryIO, data: bytes) -> None:
            # hashed and written off the event loop, in one hop (both release the GIL)
            digest.update(data)
            out.write(data)

        try:
            out = await anyio.to_thread.run_sync(lambda: open(tmp, "xb"))  # noqa: SIM115
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                    if pending_bytes >= CHUNK_BYTES:
                        data = b"".join(pending)
                        pending, pending_bytes = [], 0
                        await anyio.to_thread.run_sync(put, out, data)
                if pending:
                    await anyio.to_thread.run_sync(put, out, b"".join(pending))
            finally:
                await anyio.to_thread.run_sync(out.close)
            final = self._path(key)

            def publish() -> None:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)

            await anyio.to_thread.run_sync(publish)
        except BaseException:
            await anyio.to_thread.run_sync(lambda: tmp.unlink(missing_ok=True))
            raise
        return WrittenBlob(key, size, digest.hexdigest())

    async def open(self, key: str, start: int = 0, end: int | None = None) -> OpenBlob:
        path = self._path(key)
        try:
            handle = await anyio.open_file(path, "rb")
        except FileNotFoundError:
            raise BlobMissing(key) from None
        size = os.fstat(handle.wrapped.fileno()).st_size
        stop = size if end is None else min(end, size)

        async def chunks() -> AsyncIterator[bytes]:
            async with handle:
                if start:
                    await handle.seek(start)
                left = stop - start
                while left > 0:
                    chunk = await handle.read(min(CHUNK_BYTES, left))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk

        return OpenBlob(size, chunks())

    async def delete(self, key: str) -> None:
        try:
            path = self._path(key)
        except BlobMissing:
            return
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def keys_older_than(self, moment: datetime) -> AsyncIterator[str]:
        cutoff = moment.timestamp()

        def scan() -> list[str]:
            found: list[str] = []
            if not self.root.is_dir():
                return found
            for entry in self.root.iterdir():
                if entry.name == "tmp":
                    continue
                if not entry.is_dir():
                    continue
                for blob in entry.iterdir():
                    if _valid_key(blob.name) and blob.stat().st_mtime < cutoff:
                        found.append(blob.name)
            return found

        for key in await anyio.to_thread.run_sync(scan):
            yield key

    async def remove_stale_parts(self, moment: datetime) -> int:
        """Delete unfinished writes older than ``moment`` (a process killed mid-upload);
        returns how many."""
        tmp_dir = self.root / "tmp"
        cutoff = moment.timestamp()

        def sweep() -> int:
            if not tmp_dir.is_dir():
                return 0
            removed = 0
            for part in tmp_dir.iterdir():
                if part.name.endswith(".part") and part.stat().st_mtime < cutoff:
                    part.unlink(missing_ok=True)
                    removed += 1
            return removed

        return await anyio.to_thread.run_sync(sweep)
