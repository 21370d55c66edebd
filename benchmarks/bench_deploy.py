"""Deploys over a big table: an index backfill against raw SQL inserts of the same index rows,
and a data migration, on 100,000 documents.

Run as ``python -m benchmarks.bench_deploy``. For each database (a SQLite file in a temporary
directory, and a fresh PostgreSQL schema dropped at the end) it fills ``items`` with
``--docs`` documents through the engine, then times, in alternating rounds:

- **backfill**: deploying ``benchmarks/deployapp/indexed.py`` (the table plus an index over
  ``n``) onto the deployed ``plain.py``: the whole ``deploy()``, which scans the documents in
  batches of ``--batch`` (read, decode, key, insert, one transaction each), catches up and goes
  live. Between rounds, deploying ``plain.py`` again drops the index (timed as **drop**);
- **raw insert**: the same index rows (read back from ``index_entries`` after a backfill, so
  the same names, keys and ids), deleted, then inserted again with plain SQL on the same
  database and table, in the same batches, one transaction each: ``executemany`` of an
  ``INSERT`` on SQLite, one ``INSERT ... SELECT FROM unnest(...)`` per batch on PostgreSQL.

On PostgreSQL the tables are vacuumed once filled (as autovacuum soon would): a first read of
freshly written rows sets their hint bits, which would fall on the first timed backfill only.
The goal is a backfill rate of at least half the raw insert rate: the ratio printed is the
median of the rounds' ratios (the rates are the medians of the rounds' rates).

Then the data migration ``items:annotate`` (fills the optional ``note`` of every item) runs
over the same table, in
batches of ``--migration-batch`` (one serializable transaction each, like a mutation), and its
rate is printed beside a raw SQL ``UPDATE`` of the same documents' JSON in the same batches (no
log, no index upkeep): a reference, not a goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.engine import Engine
from backend.migrator import Migrator
from backend.storage.database import DatabaseKind, create_db_engine
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.transactions.transaction import DatabaseWriter, Transaction
from backend.udf.app import load_app

GOAL_RATIO = 0.5
FUNCTIONS = "benchmarks.deployapp.functions"
INDEX = "items.by_n"


@dataclass
class Target:
    name: str
    store: Store


@asynccontextmanager
async def sqlite_target() -> AsyncIterator[Target]:
    directory = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    store = Store(f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}")
    try:
        await upgrade(store.engine)
        yield Target("sqlite", store)
    finally:
        await store.close()
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def postgres_target(url: str) -> AsyncIterator[Target]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        store = Store(url, pg_schema=schema)
        try:
            await upgrade(store.engine)
            yield Target("postgres", store)
        finally:
            await store.close()
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def engine_for(store: Store, version: str) -> Engine:
    app = load_app(f"benchmarks.deployapp.{version}", FUNCTIONS)
    return Engine(store, app, system_schema=system_schema(), system_functions=system_functions())


async def fill(store: Store, docs: int) -> None:
    engine = engine_for(store, "plain")
    report = await deploy(store, engine.code_schema)
    if not report.ok:
        raise RuntimeError(report.format())
    await engine.load_deployment()
    per_txn = 2000
    for start in range(0, docs, per_txn):

        async def body(txn: Transaction, start: int = start) -> None:
            db = DatabaseWriter(txn)
            for i in range(start, min(docs, start + per_txn)):
                await db.insert("items", {"group": f"g{i % 20}", "n": i, "label": f"item {i}"})

        await engine.write(body, function_path="bench:fill")
    await settle(store)


async def settle(store: Store) -> None:
    """What autovacuum does to a freshly filled PostgreSQL table before anyone adds an index
    to it (and would otherwise fall on the first timed read): set its hint bits, analyze it."""
    if store.kind is DatabaseKind.POSTGRESQL:
        async with store.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM (ANALYZE) documents, index_entries"))


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await fn()
    return time.perf_counter() - began


async def index_rows(store: Store) -> list[tuple[str, bytes, str]]:
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT index_name, key, doc_id FROM index_entries WHERE index_name = :n"
                    " ORDER BY key"
                ),
                {"n": INDEX},
            )
        ).all()
    return [(r[0], bytes(r[1]), r[2]) for r in rows]


async def delete_rows(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM index_entries WHERE index_name = :n"), {"n": INDEX})


async def raw_insert(store: Store, rows: list[tuple[str, bytes, str]], batch: int) -> None:
    """The same rows, by hand: one transaction per batch, the fastest plain statement."""
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        async with store.engine.begin() as conn:
            if store.kind is DatabaseKind.SQLITE:
                driver = await conn.get_raw_connection()
                sqlite_conn: Any = driver.driver_connection
                await sqlite_conn.executemany(
                    "INSERT INTO index_entries (index_name, key, doc_id) VALUES (?, ?, ?)", chunk
                )
            else:
                await conn.execute(
                    text(
                        "INSERT INTO index_entries (index_name, key, doc_id) SELECT * FROM"
                        " unnest(CAST(:n AS text[]), CAST(:k AS bytea[]), CAST(:d AS text[]))"
                    ),
                    {
                        "n": [r[0] for r in chunk],
                        "k": [r[1] for r in chunk],
                        "d": [r[2] for r in chunk],
                    },
                )


async def raw_update(store: Store, batch: int) -> float:
    """The migration's writes by hand: each document's JSON rewritten, a batch per transaction."""
    import json

    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT doc_id, value FROM documents WHERE table_name = 'items' ORDER BY doc_id"
                )
            )
        ).all()
    began = time.perf_counter()
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        updates = []
        for doc_id, value in chunk:
            document = json.loads(value)
            document["note"] = f"{document['group']}/{document['n']}"
            updates.append({"v": json.dumps(document, separators=(",", ":")), "id": doc_id})
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE documents SET value = :v WHERE doc_id = :id"), updates)
    return time.perf_counter() - began


@dataclass
class Result:
    database: str
    operation: str
    rate: float
    baseline: float | None
    rounds: list[float]
    goal: bool

    @property
    def ratio(self) -> float | None:
        """The median of the rounds' ratios (each round's two sides ran back to back, so a
        slow moment of the machine falls on both), or the one ratio."""
        if self.rounds:
            return statistics.median(self.rounds)
        return self.rate / self.baseline if self.baseline else None


async def bench(target: Target, args: argparse.Namespace) -> list[Result]:
    store = target.store
    print(f"{target.name}: filling {args.docs:,} documents", flush=True)
    await fill(store, args.docs)
    indexed = engine_for(store, "indexed").code_schema
    plain = engine_for(store, "plain").code_schema
    backfills: list[float] = []
    drops: list[float] = []
    raws: list[float] = []
    rows: list[tuple[str, bytes, str]] = []
    for round_ in range(args.rounds):
        order = ("deploy", "raw") if round_ % 2 == 0 else ("raw", "deploy")
        for side in order:
            if side == "deploy":
                seconds = await timed(lambda: deploy(store, indexed, batch_size=args.batch))
                backfills.append(args.docs / seconds)
                rows = await index_rows(store)
                if len(rows) != args.docs:
                    raise RuntimeError(f"the backfill wrote {len(rows)} entries")
                seconds = await timed(lambda: deploy(store, plain, batch_size=args.batch))
                drops.append(args.docs / seconds)
            else:
                if not rows:  # the first round starts raw: make the rows once, untimed
                    await deploy(store, indexed, batch_size=args.batch)
                    rows = await index_rows(store)
                    await deploy(store, plain, batch_size=args.batch)
                seconds = await timed(lambda rows=rows: raw_insert(store, rows, args.batch))
                raws.append(args.docs / seconds)
                await delete_rows(store)
        print(
            f"  round {round_ + 1}: backfill {backfills[-1]:,.0f}/s, raw {raws[-1]:,.0f}/s",
            flush=True,
        )
    engine = engine_for(store, "plain")
    await engine.load_deployment()
    migrator = Migrator(engine)
    seconds = await timed(lambda: migrator.run("items:annotate", batch_size=args.migration_batch))
    migration = args.docs / seconds
    update = args.docs / await raw_update(store, args.migration_batch)
    return [
        Result(
            target.name,
            "backfill",
            statistics.median(backfills),
            statistics.median(raws),
            [b / r for b, r in zip(backfills, raws, strict=True)],
            True,
        ),
        Result(target.name, "drop", statistics.median(drops), None, [], False),
        Result(target.name, "migration", migration, update, [], False),
    ]


def render(results: list[Result]) -> str:
    header = (
        "database",
        "operation",
        "docs/s",
        "raw SQL/s",
        "ratio",
        "rounds",
        f"goal >= {GOAL_RATIO}",
    )
    lines = [header]
    for r in results:
        ratio = r.ratio
        goal = "-"
        if r.goal and ratio is not None:
            goal = "met" if ratio >= GOAL_RATIO else "missed"
        spread = f"{min(r.rounds):.2f}-{max(r.rounds):.2f}" if r.rounds else "-"
        lines.append(
            (
                r.database,
                r.operation,
                f"{r.rate:,.0f}",
                f"{r.baseline:,.0f}" if r.baseline else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                spread,
                goal,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rows = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    rows.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_deploy", description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--batch", type=int, default=2000, help="backfill batch (default 2000)")
    parser.add_argument(
        "--migration-batch", type=int, default=500, help="migration batch (default 500)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args(argv)
    if args.docs < 1 or args.rounds < 1 or args.batch < 1 or args.migration_batch < 1:
        parser.error("--docs, --rounds and the batches must be positive")
    return args


async def main(args: argparse.Namespace) -> int:
    targets = []
    versions = []
    if args.only in (None, "sqlite"):
        targets.append(sqlite_target)
        versions.append(f"SQLite {sqlite3.sqlite_version}")
    if args.only in (None, "postgres"):
        admin = create_db_engine(args.postgres_url)
        try:
            async with admin.connect() as conn:
                pg = (await conn.execute(text("SHOW server_version"))).scalar_one()
        except (OSError, DBAPIError) as exc:
            print(f"PostgreSQL at {args.postgres_url} is unreachable ({exc})")
            return 2
        finally:
            await admin.dispose()
        versions.append(f"PostgreSQL {pg}")
        targets.append(lambda: postgres_target(args.postgres_url))
    command = shlex.join(["python", "-m", "benchmarks.bench_deploy", *sys.argv[1:]])
    libraries = ", ".join(f"{p} {version(p)}" for p in ("sqlalchemy", "aiosqlite", "asyncpg"))
    print(f"command: {command}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"databases: {'; '.join(versions)}")
    print(f"libraries: {libraries}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(
        f"runs: {args.docs:,} documents, {args.rounds} alternating rounds, backfill batches of "
        f"{args.batch}, migration batches of {args.migration_batch}",
        flush=True,
    )
    began = time.perf_counter()
    results: list[Result] = []
    for make in targets:
        async with make() as target:
            results.extend(await bench(target, args))
    print()
    print(render(results))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
