"""The database as an attacker holding a copy of it sees it: every row of every table, raw.

``dump`` reads the engine's SQL tables directly (documents, index entries, the log, commits,
stored outcomes, the migration table: whatever exists), below the engine and without its keys.
``copy_database`` makes an independent copy (a second SQLite file, or a second PostgreSQL
schema), as a backup or a stolen replica would be.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from sqlalchemy import text

from backend.storage.database import DatabaseKind, create_db_engine, kind_of
from backend.storage.store import Store


async def table_names(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        if store.kind is DatabaseKind.SQLITE:
            rows = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        else:
            rows = await conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            )
        return sorted(str(row[0]) for row in rows)


async def dump(store: Store) -> str:
    """Every row of every table as text, one line per row (binary columns as latin-1)."""
    lines: list[str] = []
    names = await table_names(store)
    assert {"documents", "log", "commits"} <= set(names), names
    async with store.engine.connect() as conn:
        for name in names:
            for row in await conn.execute(text(f'SELECT * FROM "{name}"')):  # noqa: S608
                cells = [
                    bytes(cell).decode("latin-1")
                    if isinstance(cell, bytes | bytearray | memoryview)
                    else str(cell)
                    for cell in row
                ]
                lines.append(f"{name}: " + " | ".join(cells))
    return "\n".join(lines)


async def copy_database(store: Store, workdir: Path) -> tuple[str, str | None]:
    """An independent copy of ``store``'s database: ``(url, pg_schema)`` to open it with."""
    if store.kind is DatabaseKind.SQLITE:
        database = store.engine.url.database
        assert database is not None
        return f"sqlite+aiosqlite:///{_copy_file(Path(database), workdir)}", None
    assert store.pg_schema is not None
    url = store.url
    assert kind_of(url) is not DatabaseKind.SQLITE
    copy = f"copy_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{copy}"'))
            sequences = await conn.execute(
                text(
                    "SELECT sequence_name FROM information_schema.sequences "
                    "WHERE sequence_schema = :schema"
                ),
                {"schema": store.pg_schema},
            )
            for (name,) in sequences.all():
                old, new = f'"{store.pg_schema}"."{name}"', f'"{copy}"."{name}"'
                await conn.execute(text(f"CREATE SEQUENCE {new}"))
                restart = f"SELECT setval('{new}', last_value, is_called) FROM {old}"  # noqa: S608
                await conn.execute(text(restart))
            for name in await table_names(store):
                old, new = f'"{store.pg_schema}"."{name}"', f'"{copy}"."{name}"'
                await conn.execute(text(f"CREATE TABLE {new} (LIKE {old} INCLUDING ALL)"))
                await conn.execute(text(f"INSERT INTO {new} SELECT * FROM {old}"))  # noqa: S608
    finally:
        await admin.dispose()
    return url, copy


async def drop_copy(url: str, pg_schema: str | None) -> None:
    if pg_schema is None:
        _remove_file(Path(url.removeprefix("sqlite+aiosqlite:///")))
        return
    admin = create_db_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE'))
    finally:
        await admin.dispose()


def _copy_file(source: Path, workdir: Path) -> Path:
    target = workdir / f"copy-{uuid.uuid4().hex[:8]}.sqlite3"
    shutil.copyfile(source, target)
    wal = Path(f"{source}-wal")
    if wal.exists():  # commits not yet folded into the main file
        shutil.copyfile(wal, f"{target}-wal")
    return target


def _remove_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
