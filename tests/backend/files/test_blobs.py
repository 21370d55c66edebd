"""The local-disk blob store: streamed both ways, whole or not at all, keys that are never
paths."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.files.blobs import BlobMissing, BlobTooLarge, LocalDiskBlobs

MB = 1024 * 1024


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def stream(total: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


async def test_a_large_file_streams_in_and_out_without_being_held(tmp_path: Path) -> None:
    blobs = LocalDiskBlobs(tmp_path)
    total = 48 * MB
    tracemalloc.start()
    try:
        written = await blobs.write(stream(total), max_bytes=total)
        _, peak_in = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        opened = await blobs.open(written.key)
        digest = hashlib.sha256()
        size = 0
        async for chunk in opened.chunks:
            digest.update(chunk)
            size += len(chunk)
        _, peak_out = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (written.size, opened.size, size) == (total, total, total)
    assert written.sha256 == digest.hexdigest()
    assert peak_in < 8 * MB, peak_in  # a few chunks, never the file
    assert peak_out < 8 * MB, peak_out


async def test_past_the_limit_nothing_is_kept(tmp_path: Path) -> None:
    blobs = LocalDiskBlobs(tmp_path)
    with pytest.raises(BlobTooLarge):
        await blobs.write(stream(3 * MB), max_bytes=2 * MB)
    assert files_in(tmp_path) == []


async def test_a_write_that_fails_midway_leaves_nothing(tmp_path: Path) -> None:
    blobs = LocalDiskBlobs(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * MB
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        await blobs.write(broken(), max_bytes=10 * MB)
    assert files_in(tmp_path) == []


async def test_keys_are_never_paths(tmp_path: Path) -> None:
    blobs = LocalDiskBlobs(tmp_path / "root")
    secret = tmp_path / "secret"
    secret.write_bytes(b"not a blob")
    for key in ("../secret", "../../etc/passwd", "/etc/passwd", "A" * 32, ""):
        with pytest.raises(BlobMissing):
            await blobs.open(key)
        await blobs.delete(key)
    assert secret.read_bytes() == b"not a blob"


async def test_the_sweepers_listing_sees_only_old_finished_blobs(tmp_path: Path) -> None:
    blobs = LocalDiskBlobs(tmp_path)
    written = await blobs.write(stream(10), max_bytes=100)
    (tmp_path / "tmp" / ("1" * 32 + ".part")).write_bytes(b"partial")
    now = datetime.now(UTC)
    assert [k async for k in blobs.keys_older_than(now - timedelta(hours=1))] == []
    assert [k async for k in blobs.keys_older_than(now + timedelta(hours=1))] == [written.key]
    assert await blobs.remove_stale_parts(now - timedelta(hours=1)) == 0
    assert await blobs.remove_stale_parts(now + timedelta(hours=1)) == 1
