"""Snapshots with file storage: ``_storage/documents.jsonl`` and each file's bytes beside it,
exported from one consistent snapshot and imported only when every row, every blob and every
entry name checks out. The import is attacked here (zip-slip names, duplicate entries, bytes
that do not match their row, blobs without rows and rows without blobs, oversize claims, ids of
other tables) and must leave no blob on disk and no row behind; a round trip into a fresh
backend must serve the same bytes under the same ids, so app documents referencing them hold.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from backend.errors import invalid_argument
from backend.files.api import StorageActions
from backend.files.blobs import BlobStore, WrittenBlob
from backend.snapshot import ExportFailed, ImportReport, export_snapshot, import_snapshot
from backend.testing import TestBackend
from backend.transactions.transaction import Transaction
from backend.udf.app import App, load_app
from backend.values.ids import make_id

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
# past one chunk of the blob store and of the ZIP reader, so streaming is exercised
LARGE = bytes(range(251)) * 12_000
FILES: list[tuple[bytes, str | None]] = [
    (PNG, "image/png"),
    (b"hello, world\n", "text/plain; charset=utf-8"),
    (b"", None),
    (LARGE, "application/octet-stream"),
]


@functools.cache
def chat_app() -> App:
    """Convex's system-tables demo: ``file_uploads.upload_id`` is an ``Id("_storage")``."""
    return load_app("tests.apps.system_tables.schema", "tests.apps.system_tables.functions")


def blobs_on_disk(t: TestBackend) -> list[Path]:
    return [p for p in t.files_dir.rglob("*") if p.is_file()]


def _backend(database_url: str | None, **options: Any) -> TestBackend:
    return TestBackend(database_url, app=chat_app(), **options)


@pytest.fixture
async def source(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with _backend(database_url) as t:
        yield t


@pytest.fixture
async def fresh(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with _backend(database_url) as t:
        yield t


async def _store_files(t: TestBackend) -> dict[str, bytes]:
    """The files of ``FILES``, each sent as an image message (a ``file_uploads`` row
    referencing it); their bytes by storage id."""
    stored: dict[str, bytes] = {}
    for n, (data, content_type) in enumerate(FILES):
        storage_id = await StorageActions(t.engine).store(data, content_type)
        await t.mutation("messages:sendImage", {"storageId": storage_id, "author": f"user {n}"})
        stored[storage_id] = data
    await t.mutation("messages:sendMessage", {"body": "no file", "author": "user 0"})
    return stored


@pytest.fixture
async def exported(source: TestBackend, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    stored = await _store_files(source)
    path = tmp_path / "snapshot.zip"
    report = await export_snapshot(source.engine, path)
    assert report.files == len(FILES)
    assert report.file_bytes == sum(len(data) for data in stored.values())
    return path, stored


async def _everything(t: TestBackend) -> dict[str, list[dict[str, Any]]]:
    async def read(ctx: Any) -> dict[str, list[dict[str, Any]]]:
        return {
            name: await ctx.db.query(name).collect()
            for name in ("messages", "file_uploads", "_storage")
        }

    found: dict[str, list[dict[str, Any]]] = await t.run(read)
    for row in found["_storage"]:
        row.pop("blobKey")  # a fresh key in every backend
    return found


async def _assert_untouched(t: TestBackend, report: ImportReport, *fragments: str) -> None:
    assert not report.ok
    text = report.format()
    assert "nothing was written" in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert blobs_on_disk(t) == []
    assert await _everything(t) == {"messages": [], "file_uploads": [], "_storage": []}


def _rebuild(
    source: Path,
    target: Path,
    *,
    drop: Callable[[str], bool] = lambda name: False,
    change: dict[str, bytes] | None = None,
    add: list[tuple[str, bytes]] | None = None,
) -> None:
    """A copy of the ZIP ``source``: entries dropped, their bytes changed, entries added (a
    name already there is added a second time)."""
    change = change or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if not drop(name):
                new.writestr(name, change.get(name, old.read(name)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Duplicate name": the point of some tests
            for name, data in add or []:
                new.writestr(name, data)


def _rows(path: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(path) as archive:
        lines = archive.read("_storage/documents.jsonl").decode().splitlines()
    return [json.loads(line) for line in lines]


def _with_rows(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    return {"_storage/documents.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()}


def _blob_name(path: Path, storage_id: str) -> str:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.startswith(f"_storage/{storage_id}")]
    return name


def _storage_id(seed: int) -> str:
    return make_id("_storage", bytes([seed]) * 16)


# ---- the layout -------------------------------------------------------------------------------


async def test_the_export_holds_each_files_row_and_bytes_in_convexs_layout(
    exported: tuple[Path, dict[str, bytes]],
) -> None:
    path, stored = exported
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        listing = [
            json.loads(line) for line in archive.read("_tables/documents.jsonl").splitlines()
        ]
        blobs = {name: archive.read(name) for name in names if name.startswith("_storage/")}
    rows = {row["_id"]: row for row in _rows(path)}
    assert set(rows) == set(stored)
    assert {t["name"] for t in listing} == {"messages", "file_uploads"}  # _storage is not a table
    for storage_id, data in stored.items():
        row = rows[storage_id]
        assert set(row) <= {"_id", "_creationTime", "sha256", "size", "contentType"}
        assert row["size"] == len(data)
        assert base64.b64decode(row["sha256"]) == hashlib.sha256(data).digest()
        assert blobs[_blob_name(path, storage_id)] == data
    by_type = {rows[i].get("contentType"): _blob_name(path, i) for i in stored}
    assert by_type["image/png"].endswith(".png")  # the extension is a guess, for people
    assert by_type["text/plain; charset=utf-8"].endswith(".txt")
    assert "." not in by_type[None]
    assert "blobKey" not in json.dumps(_rows(path))  # keys stay in their backend


# ---- the round trip ---------------------------------------------------------------------------


async def test_files_and_the_documents_naming_them_round_trip_into_a_fresh_backend(
    source: TestBackend, fresh: TestBackend, exported: tuple[Path, dict[str, bytes]]
) -> None:
    path, stored = exported
    report = await import_snapshot(fresh.engine, path)
    assert report.ok, report.format()
    assert report.files == len(FILES)
    assert await _everything(fresh) == await _everything(source)  # same ids, times, metadata
    assert len(blobs_on_disk(fresh)) == len(FILES)
    listed = await fresh.query("admin:listFiles")
    assert {f["_id"] for f in listed} == set(stored)  # file_uploads.upload_id still resolves
    for message in await fresh.query("messages:list"):
        if message["format"] == "image":
            served = await fresh.fetch(message["url"])  # ctx.storage.get_url
            assert served.status_code == 200
            assert served.content == stored[message["body"]]
    for storage_id, data in stored.items():
        assert await StorageActions(fresh.engine).get(storage_id) == data  # ctx.storage.get

    # a second import meets a _storage that is not empty: refused, and no blob is added
    again = await import_snapshot(fresh.engine, path)
    assert not again.ok
    assert "not empty: file_uploads, messages, _storage;" in again.format()
    assert len(blobs_on_disk(fresh)) == len(FILES)

    # --replace swaps the files: the old bytes go once the import commits
    replaced = await import_snapshot(fresh.engine, path, replace_tables=True)
    assert replaced.ok, replaced.format()
    assert await _everything(fresh) == await _everything(source)
    assert len(blobs_on_disk(fresh)) == len(FILES)
    for storage_id, data in stored.items():
        assert await StorageActions(fresh.engine).get(storage_id) == data


async def test_a_deleted_file_is_not_exported(source: TestBackend, tmp_path: Path) -> None:
    stored = await _store_files(source)
    gone = next(iter(stored))
    await StorageActions(source.engine).delete(gone)
    path = tmp_path / "snapshot.zip"
    report = await export_snapshot(source.engine, path)
    assert report.files == len(FILES) - 1
    assert gone not in {row["_id"] for row in _rows(path)}
    with zipfile.ZipFile(path) as archive:
        assert not any(gone in name for name in archive.namelist())


async def test_an_export_whose_bytes_are_gone_or_damaged_fails_and_writes_nothing(
    source: TestBackend, tmp_path: Path
) -> None:
    stored = await _store_files(source)
    path = tmp_path / "snapshot.zip"

    async def key_of(ctx: Any) -> str:
        row = await ctx.db.get(next(iter(stored)))
        return str(row["blobKey"])

    key = await source.run(key_of)
    (blob,) = [p for p in blobs_on_disk(source) if p.name == key]
    blob.write_bytes(b"\x00" * len(PNG))  # the same size, other bytes
    with pytest.raises(ExportFailed, match="not its row's"):
        await export_snapshot(source.engine, path)
    blob.unlink()  # as when the file is deleted while the export runs
    with pytest.raises(ExportFailed, match="are gone"):
        await export_snapshot(source.engine, path)
    assert os.listdir(tmp_path) == []  # no snapshot, no partial one


# ---- the attacker's snapshots -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../evil", "_storage/../../evil", "/etc/passwd", "C:\\evil", "orgs/./documents.jsonl"],
)
async def test_a_zip_slip_name_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path, name: str
) -> None:
    path, _stored = exported
    evil = tmp_path / "evil.zip"
    _rebuild(path, evil, add=[(name, b"x")])
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, "unsafe entry name")
    assert not (tmp_path / "evil").exists()


async def test_a_duplicate_entry_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, stored = exported
    first = next(iter(stored))
    name = _blob_name(path, first)
    for duplicate in (name, "_storage/documents.jsonl", "messages/documents.jsonl"):
        evil = tmp_path / "evil.zip"
        _rebuild(path, evil, add=[(duplicate, b"other bytes")])
        report = await import_snapshot(fresh.engine, evil)
        await _assert_untouched(fresh, report, f"{duplicate}: appears twice")


async def test_bytes_that_do_not_match_their_row_are_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, stored = exported
    png, text = list(stored)[:2]
    evil = tmp_path / "evil.zip"
    _rebuild(
        path,
        evil,
        change={
            _blob_name(path, png): b"\x00" * len(PNG),  # same size, other bytes
            _blob_name(path, text): b"hello, world, and more\n",  # other size
        },
    )
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(
        fresh,
        report,
        f"{_blob_name(path, png)}: its sha256 is not the row's",
        f"{_blob_name(path, text)}: 23 bytes, but its row (_storage line 2) says 13",
    )


async def test_a_row_whose_size_or_hash_was_changed_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _stored = exported
    rows = _rows(path)
    rows[0]["size"] += 1
    rows[1]["sha256"] = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    evil = tmp_path / "evil.zip"
    _rebuild(path, evil, change=_with_rows(rows))
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, "its row (_storage line 1) says", "sha256 is not")


async def test_a_row_without_its_bytes_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, stored = exported
    missing = list(stored)[1]
    evil = tmp_path / "evil.zip"
    _rebuild(path, evil, drop=lambda name: name == _blob_name(path, missing))
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, f"_storage line 2 ({missing}): no bytes")


async def test_bytes_without_a_row_are_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, stored = exported
    orphan = _storage_id(7)
    dropped = next(iter(stored))
    evil = tmp_path / "evil.zip"
    rows = [row for row in _rows(path) if row["_id"] != dropped]
    _rebuild(path, evil, change=_with_rows(rows), add=[(f"_storage/{orphan}.txt", b"stray")])
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(
        fresh,
        report,
        f"_storage/{orphan}.txt: no row in _storage/documents.jsonl",
        f"{_blob_name(path, dropped)}: no row",
    )


async def test_a_snapshot_of_bytes_only_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _stored = exported
    evil = tmp_path / "evil.zip"
    _rebuild(path, evil, drop=lambda name: name == "_storage/documents.jsonl")
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, "no row in _storage/documents.jsonl")


async def test_an_oversize_claim_is_refused_before_reading(
    database_url: str | None, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _stored = exported
    rows = _rows(path)
    rows[0]["size"] = 1 << 40
    evil = tmp_path / "evil.zip"
    _rebuild(path, evil, change=_with_rows(rows))
    async with _backend(database_url) as fresh:
        report = await import_snapshot(fresh.engine, evil)
        await _assert_untouched(fresh, report, "_storage line 1", "the file-storage limit")
    # a backend whose limit is below a real file refuses the honest snapshot too
    async with _backend(database_url, max_file_bytes=len(PNG)) as small:
        report = await import_snapshot(small.engine, path)
        await _assert_untouched(small, report, "_storage line 4", "the file-storage limit")


async def test_a_bad_id_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, stored = exported
    rows = _rows(path)
    foreign = make_id("messages", b"\x01" * 16)
    first = rows[0]["_id"]
    rows[0]["_id"] = foreign  # an id of an app table
    rows[1]["_id"] = "../../etc/passwd"
    rows[2]["_id"] = rows[3]["_id"]  # twice
    evil = tmp_path / "evil.zip"
    _rebuild(
        path,
        evil,
        change=_with_rows(rows),
        add=[(f"_storage/{foreign}", b"x"), ("_storage/not-an-id.png", b"x")],
    )
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(
        fresh,
        report,
        f"_storage line 1: _id '{foreign}' is not an id of _storage",
        "_storage line 2: _id '../../etc/passwd' is not an id of _storage",
        "_storage line 3",
        "appears twice",
        f"_storage/{foreign}: not a file of _storage",
        "_storage/not-an-id.png: not a file of _storage",
        f"{_blob_name(path, first)}: no row",
    )
    assert stored  # the honest snapshot still imports
    assert (await import_snapshot(fresh.engine, path)).ok


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda row: row.update(sha256="not base64!"), "sha256 must be the base64"),
        (lambda row: row.update(size=-1), "size must be a whole number of bytes"),
        (lambda row: row.update(size=True), "size must be a whole number of bytes"),
        (lambda row: row.update(size=1.5), "size must be a whole number of bytes"),
        (lambda row: row.update(contentType="text/html\r\nX: y"), "contentType"),
        (lambda row: row.update(blobKey="ab" * 16), "unknown field blobKey"),
        (lambda row: row.pop("_creationTime"), "_creationTime must be a number"),
        (lambda row: row.clear(), "not an id of _storage"),
    ],
)
async def test_a_malformed_row_is_refused(
    fresh: TestBackend,
    exported: tuple[Path, dict[str, bytes]],
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    path, _stored = exported
    rows = _rows(path)
    edit(rows[0])
    evil = tmp_path / "evil.zip"
    _rebuild(path, evil, change=_with_rows(rows))
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, "_storage line 1", reason)


async def test_a_row_that_is_not_json_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _stored = exported
    evil = tmp_path / "evil.zip"
    lines = b"{not json\n[1, 2]\n"
    _rebuild(path, evil, change={"_storage/documents.jsonl": lines})
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, "_storage line 1: not JSON", "_storage line 2")


async def test_a_damaged_entry_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, stored = exported
    large = next(i for i, data in stored.items() if data == LARGE)
    name = _blob_name(path, large)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(name.encode()) + len(info.extra)
    for at in range(start + 100, start + 400):  # inside its compressed bytes
        raw[at] ^= 0x5A
    evil = tmp_path / "evil.zip"
    evil.write_bytes(bytes(raw))
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, f"{name}: the ZIP cannot give its bytes back")


# ---- failures after the checks leave nothing --------------------------------------------------


async def test_a_refused_transaction_removes_the_blobs_it_had_written(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]]
) -> None:
    path, _stored = exported
    # the blobs are written before the transaction, which finds messages not empty
    await fresh.mutation("messages:sendMessage", {"body": "already here", "author": "x"})
    report = await import_snapshot(fresh.engine, path)
    assert not report.ok
    assert "not empty: messages;" in report.format()
    assert blobs_on_disk(fresh) == []
    found = await _everything(fresh)
    assert (len(found["messages"]), found["_storage"]) == (1, [])


class _FailingBlobs(BlobStore):
    """A blob store that fails its ``fail_at``-th write, after the earlier ones worked."""

    def __init__(self, inner: BlobStore, fail_at: int) -> None:
        self.inner = inner
        self.writes = 0
        self.fail_at = fail_at

    async def write(self, chunks: AsyncIterator[bytes], max_bytes: int) -> WrittenBlob:
        self.writes += 1
        if self.writes == self.fail_at:
            raise OSError("disk full")
        return await self.inner.write(chunks, max_bytes)

    async def open(self, key: str, start: int = 0, end: int | None = None) -> Any:
        return await self.inner.open(key, start, end)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    def keys_older_than(self, moment: Any) -> AsyncIterator[str]:
        return self.inner.keys_older_than(moment)


async def test_a_blob_store_failure_midway_removes_the_blobs_written(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]]
) -> None:
    path, _stored = exported
    fresh.files.blobs = _FailingBlobs(fresh.files.blobs, fail_at=3)
    report = await import_snapshot(fresh.engine, path)
    await _assert_untouched(fresh, report, "disk full")


async def test_a_failed_replace_keeps_the_files_there_were(
    fresh: TestBackend,
    exported: tuple[Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _stored = exported
    kept = await StorageActions(fresh.engine).store(b"keep me", "text/plain")
    await fresh.mutation("messages:sendImage", {"storageId": kept, "author": "x"})
    before = await _everything(fresh)
    restore = Transaction.restore
    restored = 0

    async def refuse_the_third(self: Transaction, table: str, doc: Any, **kw: Any) -> None:
        nonlocal restored
        restored += 1
        if restored == 3:
            raise invalid_argument("the database refused this one", "_id")
        await restore(self, table, doc, **kw)

    monkeypatch.setattr(Transaction, "restore", refuse_the_third)
    report = await import_snapshot(fresh.engine, path, replace_tables=True)
    assert not report.ok
    assert "the database refused" in report.format()
    assert await _everything(fresh) == before
    assert len(blobs_on_disk(fresh)) == 1  # the imported blobs are gone, the old one stays
    assert await StorageActions(fresh.engine).get(kept) == b"keep me"


async def test_an_import_into_a_backend_without_files_refuses_a_snapshot_with_them(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.files.service import FileStorage

    path, _stored = exported
    monkeypatch.delitem(fresh.engine.services._by_kind, FileStorage)
    report = await import_snapshot(fresh.engine, path)
    assert not report.ok
    assert "no file storage" in report.format()


@pytest.mark.parametrize("commits", [True, False])
async def test_a_failure_of_unknown_outcome_keeps_exactly_the_bytes_a_row_names(
    fresh: TestBackend,
    exported: tuple[Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    commits: bool,
) -> None:
    """The connection lost around the commit: the import asks the database whether its rows
    are there, and keeps their bytes if they are, removes them if not."""
    path, stored = exported
    engine = fresh.engine
    real_write = engine.write

    async def lost(body: Any, **kw: Any) -> Any:
        if commits:
            await real_write(body, **kw)
        raise ConnectionResetError("the database went away")

    monkeypatch.setattr(engine, "write", lost)
    with pytest.raises(ConnectionResetError):
        await import_snapshot(engine, path)
    monkeypatch.undo()
    if commits:
        assert len(blobs_on_disk(fresh)) == len(FILES)
        for storage_id, data in stored.items():
            assert await StorageActions(engine).get(storage_id) == data
    else:
        await _assert_untouched(fresh, ImportReport(refusals=["nothing was written"]))


async def test_a_document_naming_a_file_by_an_id_of_another_table_is_refused(
    fresh: TestBackend, exported: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _stored = exported
    with zipfile.ZipFile(path) as archive:
        uploads = [
            json.loads(line) for line in archive.read("file_uploads/documents.jsonl").splitlines()
        ]
    uploads[0]["upload_id"] = make_id("messages", b"\x02" * 16)
    evil = tmp_path / "evil.zip"
    lines = "".join(json.dumps(u) + "\n" for u in uploads).encode()
    _rebuild(path, evil, change={"file_uploads/documents.jsonl": lines})
    report = await import_snapshot(fresh.engine, evil)
    await _assert_untouched(fresh, report, "file_uploads line 1", "field upload_id")
