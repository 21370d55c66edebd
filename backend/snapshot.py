"""Snapshot export and import: the app's tables and its stored files as a ZIP, in Convex's
snapshot layout.

```
snapshot.zip
  README.md
  _tables/documents.jsonl        {"name": "orgs", "id": 10001} per table
  orgs/documents.jsonl           one document per line, with its _id and _creationTime
  memberships/documents.jsonl
  _storage/documents.jsonl       one file per line: _id, _creationTime, contentType?, sha256, size
  _storage/<id>.png              each file's bytes (the extension a guess from its content type)
```

Values are in Convex's JSON encoding (``values/convex_json.py``: ``{"$bytes": ...}``, and so
on), so a snapshot round-trips exactly; ``_storage`` is described in ``files/snapshot.py``. The
export reads one consistent snapshot of the database, the file rows included, then streams each
file's bytes into the ZIP (a file's bytes never change, so the rows' snapshot is theirs too; a
file deleted meanwhile fails the export, which writes nothing). Only the app's tables and its
files are exported: the engine's own tables (accounts, sessions, the audit log, queued mail,
upload tokens) hold secrets and history and are backed up with the database itself
(docs/DEPLOYMENT.md).

An import checks the whole file before it writes: every entry name (no absolute path, no
``..``, no entry twice), every table one the app declares, every line a document of that
table's model with an id of that table, every file's row and bytes (``files/snapshot.py``);
any refusal is reported (table, line, field, reason) and nothing is written. Documents are read
into memory (at most ``MAX_UNCOMPRESSED_BYTES`` of them, whatever the ZIP claims); files are
streamed, each within the server's file-storage limit. The files' bytes are then written to the
blob store, and every document and file row in one transaction, keeping their ids, so
references between them (``Id("_storage")`` included) hold. If that transaction is refused or
fails, the bytes it would have named are deleted. By default every imported table (and
``_storage`` when the snapshot has a ``_storage`` folder) must be empty (Convex's
``requireEmpty``); ``replace=True`` first deletes what they hold, and a replaced file's bytes
once the import has committed (the sweeper takes any a crash leaves).

A live server's sweeper deletes bytes without a row once they are an hour old: an import whose
files take longer than that to write should run with the servers stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from backend.errors import ConvexError
from backend.files import snapshot as files_part
from backend.files.service import FileStorage
from backend.files.tables import TABLE as FILES_TABLE
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.values.convex_json import from_json, to_json

if TYPE_CHECKING:
    from backend.engine import Engine

DOCUMENTS = "documents.jsonl"
TABLES = "_tables"
IMPORT_PATH = "_system/snapshot:import"
MAX_UNCOMPRESSED_BYTES = 2 << 30  # the documents an import reads at most, whatever the ZIP claims
MAX_REFUSALS = 50
_NO_LIMIT = 1 << 62
_UNSAFE = re.compile(r"^[A-Za-z]:|[\\\x00]")
log = logging.getLogger("backend.snapshot")
_README = """# A snapshot of the app's tables and files

Each `<table>/documents.jsonl` holds one document per line (Convex's JSON encoding), with its
`_id` and `_creationTime`; `_tables/documents.jsonl` lists the tables. `_storage/documents.jsonl`
holds one stored file per line (`_id`, `_creationTime`, `contentType`, `sha256`, `size`), and
`_storage/<id>` (with an extension guessed from the content type) its bytes. Made by
`python -m backend export`; `python -m backend import` reads it back.
"""

ExportFailed = files_part.ExportFailed


@dataclass
class ExportReport:
    path: Path
    tables: dict[str, int]
    ts: int
    files: int = 0
    file_bytes: int = 0

    def format(self) -> str:
        total = sum(self.tables.values())
        lines = [f"exported {total} documents of {len(self.tables)} tables at ts {self.ts}"]
        lines += [f"  {name}: {count}" for name, count in self.tables.items()]
        lines.append(f"  {FILES_TABLE}: {self.files} files, {self.file_bytes} bytes")
        lines.append(f"to {self.path}")
        return "\n".join(lines)


@dataclass
class ImportReport:
    tables: dict[str, int] = field(default_factory=dict)
    files: int | None = None  # None: the snapshot had no _storage
    refusals: list[str] = field(default_factory=list)
    more_refusals: int = 0

    @property
    def ok(self) -> bool:
        return not self.refusals

    def refuse(self, reason: str) -> None:
        if len(self.refusals) < MAX_REFUSALS:
            self.refusals.append(reason)
        else:
            self.more_refusals += 1

    def format(self) -> str:
        if self.ok:
            total = sum(self.tables.values())
            lines = [f"imported {total} documents into {len(self.tables)} tables"]
            lines += [f"  {t}: {n}" for t, n in self.tables.items()]
            if self.files is not None:
                lines.append(f"  {FILES_TABLE}: {self.files} files")
            return "\n".join(lines)
        lines = ["import refused, nothing was written:"]
        lines += [f"  {reason}" for reason in self.refusals]
        if self.more_refusals:
            lines.append(f"  ... and {self.more_refusals} more")
        return "\n".join(lines)


def _unlimited(engine: Engine) -> Any:
    return replace(engine.limits, max_docs_read=_NO_LIMIT, max_docs_written=_NO_LIMIT)


async def export_snapshot(engine: Engine, path: Path) -> ExportReport:
    """Write the app's tables and its files, as one consistent snapshot, to the ZIP at
    ``path`` (written whole or not at all). ``ExportFailed`` when a file's bytes are gone or
    damaged; ``MissingService`` for an engine without file storage."""
    tables = sorted(t for t in engine.app.schema.tables if not t.startswith("_"))
    files = engine.services.get(FileStorage)
    counts: dict[str, int] = {}
    path = Path(path)
    fd, partial = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=path.parent or ".")
    os.close(fd)
    date_time = engine.runtime.now().timetuple()[:6]
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.md", _README)
            listing = "".join(
                json.dumps({"name": name, "id": 10001 + i}) + "\n" for i, name in enumerate(tables)
            )
            archive.writestr(f"{TABLES}/{DOCUMENTS}", listing)
            stored: list[dict[str, Any]] = []
            async with engine.store.snapshot() as reader:
                ts = reader.snapshot_ts
                txn = Transaction(
                    reader,
                    engine.schema,
                    engine.runtime,
                    _unlimited(engine),
                    now=engine.runtime.now(),
                )
                db = SystemDatabase(txn)
                for name in tables:
                    counts[name] = 0
                    with archive.open(f"{name}/{DOCUMENTS}", "w") as out:
                        async for document in db.query(name):
                            line = json.dumps(to_json(document), separators=(",", ":"))
                            out.write(line.encode("utf-8") + b"\n")
                            counts[name] += 1
                with archive.open(files_part.METADATA, "w") as out:
                    async for row in db.query(FILES_TABLE):
                        out.write(files_part.metadata_line(row))
                        stored.append(row)  # a file's row is small; its bytes are streamed
            file_bytes = await files_part.write_file_bytes(archive, files.blobs, stored, date_time)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return ExportReport(path, counts, ts, len(stored), file_bytes)


def _read_lines(archive: zipfile.ZipFile, name: str) -> Iterator[tuple[int, bytes]]:
    with archive.open(name) as source:
        for number, line in enumerate(source, start=1):
            if line.strip():
                yield number, line


def _unsafe(name: str) -> bool:
    """An entry name that could point outside a folder it were extracted to (``../x``,
    ``/x``, ``C:x``, ``a\\x``) or that names a path in more than one way (``a//b``, ``./a``)."""
    if not name or name.startswith("/") or _UNSAFE.search(name):
        return True
    parts = name.rstrip("/").split("/")
    return any(part in ("", ".", "..") for part in parts)


@dataclass
class _Parsed:
    documents: dict[str, list[Any]] = field(default_factory=dict)
    files: list[files_part.SnapshotFile] | None = None  # None: no _storage in the snapshot


def _parse(engine: Engine, archive: zipfile.ZipFile, report: ImportReport) -> _Parsed:
    """Every document and file row of the snapshot, once each is checked (a file's bytes
    only by their size in the ZIP's header: ``check_file_bytes`` reads them); refusals go to
    ``report``."""
    schema = engine.schema
    declared = {t for t in engine.app.schema.tables if not t.startswith("_")}
    parsed = _Parsed()
    seen: set[str] = set()
    entries = archive.infolist()
    names: set[str] = set()
    for info in entries:
        if _unsafe(info.filename):
            report.refuse(f"{info.filename[:80]!r}: an unsafe entry name (absolute, or with ..)")
        elif info.filename in names:
            report.refuse(f"{info.filename}: appears twice in the ZIP")
        names.add(info.filename)
    if not report.ok:
        return parsed
    blobs = [
        info
        for info in entries
        if info.filename.startswith(f"{FILES_TABLE}/")
        and info.filename != files_part.METADATA
        and not info.is_dir()
    ]
    total = sum(info.file_size for info in entries) - sum(info.file_size for info in blobs)
    if total > MAX_UNCOMPRESSED_BYTES:
        report.refuse(f"the snapshot holds {total} bytes, more than {MAX_UNCOMPRESSED_BYTES}")
        return parsed
    metadata: Iterator[tuple[int, bytes]] | None = None
    for info in entries:
        name = info.filename
        if info.is_dir() or name == "README.md" or name.endswith("/generated_schema.jsonl"):
            continue
        table, _, leaf = name.partition("/")
        if table in (TABLES, FILES_TABLE):
            if name == files_part.METADATA:
                metadata = _read_lines(archive, name)
            continue
        if leaf != DOCUMENTS:
            report.refuse(f"{name}: not a table's {DOCUMENTS}")
            continue
        if table.startswith("_"):
            report.refuse(f"{name}: {table} is the engine's own table; it is never imported")
            continue
        if table not in declared:
            report.refuse(f"{name}: the app declares no table {table!r}")
            continue
        rows = parsed.documents.setdefault(table, [])
        for number, raw in _read_lines(archive, name):
            where = f"{table} line {number}"
            try:
                document = from_json(json.loads(raw))
            except (ValueError, ConvexError) as exc:
                report.refuse(f"{where}: not a document in Convex's JSON ({exc})")
                continue
            if not isinstance(document, dict):
                report.refuse(f"{where}: not an object")
                continue
            doc_id = document.get("_id")
            if not isinstance(doc_id, str) or schema.table_of_id(doc_id) != table:
                report.refuse(f"{where}: _id {str(doc_id)[:40]!r} is not an id of {table}")
                continue
            if doc_id in seen:
                report.refuse(f"{where}: _id {doc_id} appears twice")
                continue
            seen.add(doc_id)
            creation = document.get("_creationTime")
            if isinstance(creation, bool) or not isinstance(creation, int | float):
                report.refuse(f"{where} ({doc_id}): _creationTime must be a number")
                continue
            violation = schema.violation(table, document)
            if violation is not None:
                field_path, reason = violation
                report.refuse(f"{where} ({doc_id}): field {field_path}: {reason}")
                continue
            rows.append(document)
    if metadata is not None or blobs:
        storage = engine.services.find(FileStorage)
        if storage is None:
            report.refuse(f"{FILES_TABLE}: this backend has no file storage to import files into")
            return parsed
        parsed.files = files_part.check_files(
            schema, metadata, blobs, storage.max_bytes, report.refuse
        )
    return parsed


class _Refused(Exception):
    pass


async def import_snapshot(
    engine: Engine, path: Path, *, replace_tables: bool = False
) -> ImportReport:
    """Check the snapshot at ``path`` whole, then write it (files' bytes, then one
    transaction); a refusal (``report.ok`` false) writes nothing and leaves no bytes behind."""
    report = ImportReport()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.refuse(f"{path}: not a readable ZIP file ({exc})")
        return report
    with archive:
        try:
            parsed = _parse(engine, archive, report)
        except files_part.ZIP_ERRORS as exc:
            report.refuse(f"{path}: the ZIP is damaged ({exc})")
            return report
        if parsed.files:  # read even after other refusals, to report every one
            await anyio.to_thread.run_sync(
                files_part.check_file_bytes, archive, parsed.files, report.refuse
            )
        if not report.ok:
            return report
        await _write(engine, archive, parsed, report, replace_tables=replace_tables)
    return report


async def _write(
    engine: Engine,
    archive: zipfile.ZipFile,
    parsed: _Parsed,
    report: ImportReport,
    *,
    replace_tables: bool,
) -> None:
    storage = engine.services.get(FileStorage) if parsed.files is not None else None
    written: dict[str, str] = {}
    replaced_keys: list[str] = []

    async def write(txn: Transaction) -> None:
        db = SystemDatabase(txn)
        replaced_keys.clear()
        tables = list(parsed.documents) + ([FILES_TABLE] if parsed.files is not None else [])
        if not replace_tables:
            occupied = [t for t in tables if await db.query(t).first() is not None]
            if occupied:
                raise _Refused(
                    f"not empty: {', '.join(occupied)}; import into empty tables (and a "
                    "backend without files, for _storage), or --replace"
                )
        for table, rows in parsed.documents.items():
            if replace_tables:
                async for document in db.query(table):
                    await db.delete(document["_id"])
            for document in rows:
                await txn.restore(table, document)
            report.tables[table] = len(rows)
        if parsed.files is not None:
            if replace_tables:
                async for row in db.query(FILES_TABLE):
                    replaced_keys.append(row["blobKey"])
                    await db.delete_read(row)
            for file in parsed.files:
                await txn.restore(FILES_TABLE, file.row(written[file.storage_id]), system=True)
            report.files = len(parsed.files)

    committed = False
    limits = engine.limits
    try:
        if storage is not None and parsed.files:
            try:
                written = await files_part.store_file_bytes(archive, parsed.files, storage.blobs)
            except files_part.BytesChanged as exc:
                raise _Refused(str(exc)) from None
            except files_part.ZIP_ERRORS as exc:  # the blob store's (a full disk) or the ZIP's
                raise _Refused(f"the files could not be written: {exc}") from None
        engine.limits = _unlimited(engine)
        await engine.write(write, function_path=IMPORT_PATH)
        committed = True
    except _Refused as refused:
        report.refuse(str(refused))
    except ConvexError as exc:
        report.refuse(f"the database refused a document: {exc.message}")
    finally:
        engine.limits = limits
        if not committed:
            report.tables.clear()
            report.files = None
            # refused: certainly not committed; anything else may have left that unknown
            unknown = report.ok
            if (
                written
                and storage is not None
                and not (unknown and await _committed_anyway(engine, written))
            ):
                await files_part.discard(storage.blobs, written.values())
    if committed and storage is not None and replaced_keys:
        for key in replaced_keys:
            try:
                await storage.blobs.delete(key)
            except Exception:  # the row is gone: the sweeper removes the bytes later
                log.exception("could not delete a replaced file's bytes; the sweeper will")


async def _committed_anyway(engine: Engine, written: dict[str, str]) -> bool:
    """Whether the import's rows are there after all (a failure that left the commit's
    outcome unknown). When that cannot be read either, keep the bytes: the sweeper removes
    them if no row names them."""
    first = next(iter(written))

    async def row_of(db: SystemDatabase) -> Any:
        return await db.get(first)

    try:
        with anyio.CancelScope(shield=True):
            row = await engine.system_read(row_of)
    except Exception:
        return True
    return row is not None and row.get("blobKey") == written[first]
