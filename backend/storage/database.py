"""Database engines: SQLite (embedded, WAL) or PostgreSQL (production), by URL.

SQLite's driver would open transactions lazily and in its own way; we take that over so a
reader's transaction starts with a plain ``BEGIN`` (a WAL snapshot from its first read) and a
writer's with ``BEGIN IMMEDIATE`` (the database's single write lock, taken up front, so two
writers never discover their clash half-way through).
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class DatabaseKind(Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


def kind_of(url: str) -> DatabaseKind:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return DatabaseKind.SQLITE
    if backend == "postgresql":
        return DatabaseKind.POSTGRESQL
    raise ValueError(
        f"unsupported database {backend!r}: use sqlite+aiosqlite or postgresql+asyncpg"
    )


def normalise_url(url: str) -> str:
    """Pick the async driver when a URL names none (``postgresql://`` → asyncpg)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(
    url: str, *, pg_schema: str | None = None, pool_size: int | None = None
) -> AsyncEngine:
    """An engine for ``url``; ``pool_size`` bounds its pool (default: 8+8 on SQLite; 20+10 on
    PostgreSQL, so that many concurrent mutations keep their connections instead of opening
    and closing overflow ones, a new server process each)."""
    url = normalise_url(url)
    kind = kind_of(url)
    if kind is DatabaseKind.SQLITE:
        engine = create_async_engine(
            url,
            pool_size=pool_size or 8,
            max_overflow=0 if pool_size else 8,
            connect_args={"timeout": 30},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def on_begin(connection: Any) -> None:
            mode = connection.get_execution_options().get("sqlite_begin", "")
            # Straight to aiosqlite: one call on its worker thread, where a statement through
            # SQLAlchemy's cursor takes three (open a cursor, execute, close it).
            connection.connection.dbapi_connection.run_async(
                lambda driver: driver.execute_fetchall(f"BEGIN {mode}".strip())
            )

        return engine
    connect_args: dict[str, Any] = {}
    if pg_schema is not None:
        connect_args["server_settings"] = {"search_path": pg_schema}
    return create_async_engine(
        url,
        pool_size=pool_size or 20,
        max_overflow=0 if pool_size else 10,
        connect_args=connect_args,
    )


def libpq_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN of a SQLAlchemy URL (for a raw asyncpg connection)."""
    return (
        make_url(normalise_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
