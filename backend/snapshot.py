"""Snapshot export and import: the app's tables as a ZIP of JSON lines, in Convex's layout.

```
snapshot.zip
  README.md
  _tables/documents.jsonl        {"name": "orgs", "id": 10001} per table
  orgs/documents.jsonl           one document per line, with its _id and _creationTime
  memberships/documents.jsonl
```

Values are in Convex's JSON encoding (``values/convex_json.py``: ``{"$bytes": ...}``, and so
on), so a snapshot round-trips exactly. The export reads one consistent snapshot of the
database. Only the app's tables are exported: the engine's own (accounts, sessions, the audit
log, queued mail) hold secrets and history and are backed up with the database itself
(docs/DEPLOYMENT.md).

An import checks the whole file before it writes: every table must be one the app declares,
every line a document of that table's model, with an id of that table; any refusal is
reported (table, line, field, reason) and nothing is written. The documents are then written
in one transaction, keeping their ids, so references between them hold. By default every
imported table must be empty (Convex's ``requireEmpty``); ``replace=True`` first deletes what
those tables hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.errors import ConvexError
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.values.convex_json import from_json, to_json

if TYPE_CHECKING:
    from backend.engine import Engine

DOCUMENTS = "documents.jsonl"
TABLES = "_tables"
IMPORT_PATH = "_system/snapshot:import"
MAX_UNCOMPRESSED_BYTES = 2 << 30  # what an import reads at most, whatever the ZIP claims
MAX_REFUSALS = 50
_NO_LIMIT = 1 << 62
_README = """# A snapshot of the app's tables

Each `<table>/documents.jsonl` holds one document per line (Convex's JSON encoding), with its
`_id` and `_creationTime`; `_tables/documents.jsonl` lists the tables. Made by
`python -m backend export`; `python -m backend import` reads it back.
"""


@dataclass
class ExportReport:
    path: Path
    tables: dict[str, int]
    ts: int

    def format(self) -> str:
        total = sum(self.tables.values())
        lines = [f"exported {total} documents of {len(self.tables)} tables at ts {self.ts}"]
        lines += [f"  {name}: {count}" for name, count in self.tables.items()]
        lines.append(f"to {self.path}")
        return "\n".join(lines)


@dataclass
class ImportReport:
    tables: dict[str, int] = field(default_factory=dict)
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
            return "\n".join(lines + [f"  {t}: {n}" for t, n in self.tables.items()])
        lines = ["import refused, nothing was written:"]
        lines += [f"  {reason}" for reason in self.refusals]
        if self.more_refusals:
            lines.append(f"  ... and {self.more_refusals} more")
        return "\n".join(lines)


def _unlimited(engine: Engine) -> Any:
    return replace(engine.limits, max_docs_read=_NO_LIMIT, max_docs_written=_NO_LIMIT)


async def export_snapshot(engine: Engine, path: Path) -> ExportReport:
    """Write the app's tables, as one consistent snapshot, to the ZIP at ``path`` (written
    whole or not at all)."""
    tables = sorted(t for t in engine.app.schema.tables if not t.startswith("_"))
    counts: dict[str, int] = {}
    path = Path(path)
    fd, partial = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=path.parent or ".")
    os.close(fd)
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.md", _README)
            listing = "".join(
                json.dumps({"name": name, "id": 10001 + i}) + "\n" for i, name in enumerate(tables)
            )
            archive.writestr(f"{TABLES}/{DOCUMENTS}", listing)
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
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return ExportReport(path, counts, ts)


def _read_lines(archive: zipfile.ZipFile, name: str) -> Iterator[tuple[int, bytes]]:
    with archive.open(name) as source:
        for number, line in enumerate(source, start=1):
            if line.strip():
                yield number, line


def _parse(engine: Engine, archive: zipfile.ZipFile, report: ImportReport) -> dict[str, list[Any]]:
    """Every document of the snapshot, by table, once each is checked; refusals go to
    ``report``."""
    schema = engine.schema
    declared = {t for t in engine.app.schema.tables if not t.startswith("_")}
    found: dict[str, list[Any]] = {}
    seen: set[str] = set()
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_UNCOMPRESSED_BYTES:
        report.refuse(f"the snapshot holds {total} bytes, more than {MAX_UNCOMPRESSED_BYTES}")
        return found
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or name == "README.md" or name.endswith("/generated_schema.jsonl"):
            continue
        table, _, leaf = name.partition("/")
        if table == TABLES:
            continue
        if leaf != DOCUMENTS or "/" in leaf:
            report.refuse(f"{name}: not a table's {DOCUMENTS} (file storage is not imported)")
            continue
        if table.startswith("_"):
            report.refuse(f"{name}: {table} is the engine's own table; it is never imported")
            continue
        if table not in declared:
            report.refuse(f"{name}: the app declares no table {table!r}")
            continue
        rows = found.setdefault(table, [])
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
    return found


class _Refused(Exception):
    pass


async def import_snapshot(
    engine: Engine, path: Path, *, replace_tables: bool = False
) -> ImportReport:
    """Check the snapshot at ``path`` whole, then write it in one transaction; a refusal
    (``report.ok`` false) writes nothing."""
    report = ImportReport()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.refuse(f"{path}: not a readable ZIP file ({exc})")
        return report
    with archive:
        documents = _parse(engine, archive, report)
    if not report.ok:
        return report

    async def write(txn: Transaction) -> None:
        db = SystemDatabase(txn)
        for table, rows in documents.items():
            existing = db.query(table)
            if replace_tables:
                async for document in existing:
                    await db.delete(document["_id"])
            elif await existing.first() is not None:
                raise _Refused(f"{table} is not empty: import into empty tables, or --replace")
            for document in rows:
                await txn.restore(table, document)
            report.tables[table] = len(rows)

    limits = engine.limits
    engine.limits = _unlimited(engine)
    try:
        await engine.write(write, function_path=IMPORT_PATH)
    except _Refused as refused:
        report.tables.clear()
        report.refuse(str(refused))
    except ConvexError as exc:
        report.tables.clear()
        report.refuse(f"the database refused a document: {exc.message}")
    finally:
        engine.limits = limits
    return report
