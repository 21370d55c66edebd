"""File storage's part of a snapshot (``backend/snapshot.py``): the ``_storage`` folder.

The layout is Convex's (its export writes the same two kinds of entry)::

  _storage/documents.jsonl   one line per file, plain JSON:
                             {"_id", "_creationTime", "contentType"?, "sha256", "size"}
  _storage/<id>[.<ext>]      the file's bytes, whole

``sha256`` is the base64 of the digest, ``size`` a JSON integer, ``_creationTime`` the
milliseconds of the row; ``contentType`` is left out for a file with none (Convex writes
``null``, which is read as none; Convex's ``internalId`` is read and ignored). ``<ext>`` is
guessed from the content type (``.png`` for ``image/png``) from the standard library's own
table, so that a person browsing the ZIP can open a file; an import ignores it. The blob key
is never exported: an import stores each file under a fresh key and keeps its ``_id``, so the
documents that name a file (``Id("_storage")``) still find it.

An import checks before it writes: every row well-formed (an id of ``_storage``, once; a
number for ``_creationTime``; base64 of 32 bytes for ``sha256``; a size within the server's
file-storage limit; a media type or nothing), every row with its bytes and every entry of
bytes with its row, each size first from the ZIP's header and then, while hashing, from the
bytes themselves. Only then are the bytes written to the blob store (checked once more as they
go), and their rows written in the import's one transaction; a failure before that commits
removes every blob the import wrote.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import math
import mimetypes
import zipfile
import zlib
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from backend.errors import ConvexError
from backend.files.blobs import CHUNK_BYTES, BlobMissing, BlobStore, BlobTooLarge
from backend.files.service import checked_content_type
from backend.files.tables import TABLE, public_file

if TYPE_CHECKING:
    from backend.schema_definition import Schema

METADATA: Final = f"{TABLE}/documents.jsonl"
_FIELDS: Final = frozenset({"_id", "_creationTime", "contentType", "sha256", "size", "internalId"})
# the standard library's table only, not the machine's mime.types: the same names everywhere
_EXTENSIONS: Final = mimetypes.MimeTypes()

Refuse = Callable[[str], None]
ZIP_ERRORS: Final = (
    zipfile.BadZipFile,  # a bad CRC, a lying header
    zlib.error,  # damaged compressed data
    OSError,
    EOFError,
    ValueError,
    RuntimeError,  # an encrypted entry
    NotImplementedError,  # a compression method the standard library lacks
)
"""What reading a damaged or hostile ZIP entry may raise."""


class ExportFailed(Exception):
    """The export could not be made whole (a file's bytes are gone or damaged); nothing was
    written."""


class BytesChanged(Exception):
    """A file's bytes in the ZIP were not those checked a moment before (the ZIP changed
    under the import)."""


def entry_name(storage_id: str, content_type: str | None) -> str:
    """The ZIP entry of a file's bytes: ``_storage/<id>`` with an extension guessed from its
    content type, when there is one."""
    extension = None
    if content_type:
        extension = _EXTENSIONS.guess_extension(content_type.split(";")[0].strip().lower())
    return f"{TABLE}/{storage_id}{extension or ''}"


def metadata_line(row: Mapping[str, Any]) -> bytes:
    """A ``_storage`` row as a line of ``_storage/documents.jsonl``."""
    return json.dumps(public_file(row), separators=(",", ":")).encode("utf-8") + b"\n"


def _b64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _b64_decoded(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


async def write_file_bytes(
    archive: zipfile.ZipFile,
    blobs: BlobStore,
    rows: Iterable[Mapping[str, Any]],
    date_time: tuple[int, int, int, int, int, int],
) -> int:
    """Stream each row's bytes from ``blobs`` into ``archive``, one chunk at a time, checking
    them against the row as they go; the bytes written. ``ExportFailed`` for a file whose
    bytes are gone (deleted since the snapshot was read) or are not its row's."""
    total = 0
    for row in rows:
        storage_id, size = str(row["_id"]), int(row["size"])
        info = zipfile.ZipInfo(entry_name(storage_id, row.get("contentType")), date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = size  # so that ZIP64 is used when the file needs it
        try:
            opened = await blobs.open(str(row["blobKey"]))
        except BlobMissing:
            raise ExportFailed(
                f"the bytes of file {storage_id} are gone (deleted while exporting?): export again"
            ) from None
        digest = hashlib.sha256()
        written = 0
        try:
            with archive.open(info, "w") as out:
                async for chunk in opened.chunks:
                    digest.update(chunk)
                    written += len(chunk)
                    out.write(chunk)
        finally:
            close = getattr(opened.chunks, "aclose", None)
            if close is not None:  # the store's file, when the ZIP failed first
                await close()
        if written != size or _b64_sha256(digest.hexdigest()) != row["sha256"]:
            raise ExportFailed(
                f"the bytes of file {storage_id} are not its row's ({written} bytes, row says "
                f"{size}, or another sha256): the blob store is damaged"
            )
        total += written
    return total


# ---- import -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """One checked line of ``_storage/documents.jsonl``."""

    storage_id: str
    line: int
    creation_time: float
    sha256: str
    size: int
    content_type: str | None


@dataclass(frozen=True)
class SnapshotFile(_Row):
    """One file of a snapshot, its row checked and its bytes' entry found."""

    entry: zipfile.ZipInfo

    @property
    def where(self) -> str:
        return f"{TABLE} line {self.line} ({self.storage_id})"

    def row(self, blob_key: str) -> dict[str, Any]:
        """The ``_storage`` document to restore, its bytes stored under ``blob_key``."""
        document: dict[str, Any] = {
            "_id": self.storage_id,
            "_creationTime": self.creation_time,
            "sha256": self.sha256,
            "size": self.size,
            "blobKey": blob_key,
        }
        if self.content_type is not None:
            document["contentType"] = self.content_type
        return document


def _check_row(
    schema: Schema, number: int, raw: bytes, max_bytes: int, refuse: Refuse
) -> _Row | None:
    where = f"{TABLE} line {number}"
    try:
        row = json.loads(raw)
    except ValueError as exc:
        refuse(f"{where}: not JSON ({exc})")
        return None
    if not isinstance(row, dict):
        refuse(f"{where}: not an object")
        return None
    storage_id = row.get("_id")
    if not isinstance(storage_id, str) or schema.table_of_id(storage_id) != TABLE:
        refuse(f"{where}: _id {str(storage_id)[:40]!r} is not an id of {TABLE}")
        return None
    where = f"{where} ({storage_id})"
    unknown = sorted(set(row) - _FIELDS)
    if unknown:
        refuse(f"{where}: unknown field {unknown[0][:40]}")
        return None
    creation = row.get("_creationTime")
    if (
        isinstance(creation, bool)
        or not isinstance(creation, int | float)
        or not math.isfinite(creation)
        or creation <= 0
    ):
        refuse(f"{where}: _creationTime must be a number (milliseconds)")
        return None
    sha256 = row.get("sha256")
    if not isinstance(sha256, str) or len(_b64_decoded(sha256)) != 32:
        refuse(f"{where}: sha256 must be the base64 of a SHA-256 digest")
        return None
    size = row.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        refuse(f"{where}: size must be a whole number of bytes")
        return None
    if size > max_bytes:
        refuse(f"{where}: {size} bytes, more than the file-storage limit of {max_bytes}")
        return None
    content_type = row.get("contentType")
    try:
        if content_type is not None:
            if not isinstance(content_type, str):
                raise TypeError
            checked = checked_content_type(content_type)
            if checked != content_type:
                raise TypeError
    except (ConvexError, TypeError):
        refuse(f"{where}: contentType {str(content_type)[:60]!r} is not a media type")
        return None
    return _Row(storage_id, number, float(creation), sha256, size, content_type)


def check_files(
    schema: Schema,
    lines: Iterable[tuple[int, bytes]] | None,
    entries: list[zipfile.ZipInfo],
    max_bytes: int,
    refuse: Refuse,
) -> list[SnapshotFile]:
    """The snapshot's files: each row of ``lines`` (those of ``_storage/documents.jsonl``,
    None for a snapshot without one) checked and matched with its entry of bytes among
    ``entries`` (every other entry under ``_storage/``), by their sizes in the ZIP's header.
    The bytes themselves are read by ``check_file_bytes``."""
    rows: dict[str, _Row] = {}
    for number, raw in lines or ():
        row = _check_row(schema, number, raw, max_bytes, refuse)
        if row is None:
            continue
        if row.storage_id in rows:
            refuse(f"{TABLE} line {number}: _id {row.storage_id} appears twice")
            continue
        rows[row.storage_id] = row
    by_id: dict[str, zipfile.ZipInfo] = {}
    for entry in entries:
        leaf = entry.filename[len(TABLE) + 1 :]
        storage_id = leaf.split(".", 1)[0]
        if "/" in leaf or schema.table_of_id(storage_id) != TABLE:
            refuse(f"{entry.filename}: not a file of {TABLE} (_storage/<storage id>[.ext])")
            continue
        if storage_id in by_id:
            refuse(f"{entry.filename}: a second entry for file {storage_id}")
            continue
        by_id[storage_id] = entry
    files: list[SnapshotFile] = []
    for storage_id, entry in by_id.items():
        found = rows.get(storage_id)
        if found is None:
            refuse(f"{entry.filename}: no row in {METADATA}")
            continue
        if entry.file_size != found.size:
            refuse(
                f"{entry.filename}: {entry.file_size} bytes, but its row ({TABLE} line "
                f"{found.line}) says {found.size}"
            )
            continue
        files.append(SnapshotFile(**vars(found), entry=entry))
    for storage_id, row in rows.items():
        if storage_id not in by_id:
            refuse(f"{TABLE} line {row.line} ({storage_id}): no bytes (_storage/{storage_id})")
    files.sort(key=lambda file: file.line)
    return files


def _read_entry(archive: zipfile.ZipFile, file: SnapshotFile) -> Generator[bytes, None, None]:
    """The entry's bytes in chunks, never more than the row's size and one byte."""
    with archive.open(file.entry) as source:
        left = file.size + 1
        while left > 0:
            chunk = source.read(min(CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def check_file_bytes(
    archive: zipfile.ZipFile, files: Iterable[SnapshotFile], refuse: Refuse
) -> None:
    """Read each file's bytes (streamed) and refuse those whose size or sha256 is not its
    row's, or that the ZIP cannot give back whole (a damaged or lying entry). Blocking: run
    it in a thread."""
    for file in files:
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in _read_entry(archive, file):
                digest.update(chunk)
                size += len(chunk)
        except ZIP_ERRORS as exc:
            refuse(f"{file.entry.filename}: the ZIP cannot give its bytes back ({exc})")
            continue
        if size != file.size:
            refuse(
                f"{file.entry.filename}: {size} bytes, but its row ({TABLE} line "
                f"{file.line}) says {file.size}"
            )
        elif _b64_sha256(digest.hexdigest()) != file.sha256:
            refuse(f"{file.entry.filename}: its sha256 is not the row's ({file.where})")


async def _chunks(archive: zipfile.ZipFile, file: SnapshotFile) -> AsyncGenerator[bytes, None]:
    reader = _read_entry(archive, file)
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(next, reader, None)
            if chunk is None:
                return
            yield chunk
    finally:
        await anyio.to_thread.run_sync(reader.close)


async def discard(blobs: BlobStore, keys: Iterable[str]) -> None:
    """Delete the blobs under ``keys``, whatever else is going on (the sweeper removes any a
    crash leaves)."""
    with anyio.CancelScope(shield=True):
        for key in keys:
            await blobs.delete(key)


async def store_file_bytes(
    archive: zipfile.ZipFile, files: Iterable[SnapshotFile], blobs: BlobStore
) -> dict[str, str]:
    """Write each file's bytes to ``blobs``; the new key of each file, by id. On any failure
    (``BytesChanged`` for bytes that are not those checked, the store's own errors) every blob
    written so far is deleted and the failure raised."""
    written: dict[str, str] = {}
    try:
        for file in files:
            try:
                async with contextlib.aclosing(_chunks(archive, file)) as chunks:
                    blob = await blobs.write(chunks, file.size)
            except BlobTooLarge:
                raise BytesChanged(
                    f"{file.entry.filename}: its bytes changed while importing"
                ) from None
            written[file.storage_id] = blob.key
            if blob.size != file.size or _b64_sha256(blob.sha256) != file.sha256:
                raise BytesChanged(f"{file.entry.filename}: its bytes changed while importing")
    except BaseException:
        await discard(blobs, written.values())
        raise
    return written
