"""The engine against raw SQL on the same database: one insert, a get by id, a range of 100.

Run as ``python -m benchmarks.bench_engine`` (``make bench``). For each database (a SQLite
file in a temporary directory, and a fresh PostgreSQL schema that is dropped at the end) it
times, in this one process:

- ``insert``: the mutation ``items:insert`` through ``Engine.run_mutation``, against a
  SQLAlchemy Core ``INSERT`` of an equivalent row (same columns, an id and a creation time)
  into a plain table, each in its own transaction (``async with engine.begin()``);
- ``insert, driver``: the same mutation against the raw driver (``sqlite3`` called directly,
  ``asyncpg`` with prepared statements on one connection) writing the same durable rows the
  engine writes, in tables of the same shape: the document, its index entries, its log row and
  its commit row, in one transaction (the physical limit of the engine's durable write);
- ``get``: the query ``items:get`` through ``Engine.run_query``, against
  ``SELECT ... WHERE id = :id``;
- ``range``: the query ``items:range`` (100 documents of one group, via the index
  ``by_group``), against ``SELECT ... WHERE "group" = :g ORDER BY n LIMIT 100`` on a raw table
  with a btree index on ``("group", n)`` and the same data.

Engine and raw SQL run in alternating rounds (the order flips every round), so machine noise
falls on both alike; a rate is the total operations over the total time of all rounds. Calls
are sequential: this measures the cost of one operation, not throughput under concurrency.
The engine runs as the server runs it: with the sync coordinator attached (every commit
wakes it). The goals: an engine insert rate of at least half the SQLAlchemy Core rate, and at
least 0.6x the raw driver's durable write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import shutil
import sqlite3
import string
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.engine import Engine
from backend.runtime import Runtime
from backend.storage.database import create_db_engine, libpq_dsn
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.sync.coordinator import SyncCoordinator
from backend.system import system_functions, system_schema
from backend.transactions.transaction import DatabaseWriter, Transaction
from backend.udf.app import load_app

GOAL_RATIO = 0.5
DRIVER_GOAL_RATIO = 0.6
GROUPS = 20
PER_GROUP = 100
RANGE_SIZE = 100
WARMUP_SECONDS = 0.3

Operation = Callable[[], Awaitable[object]]

raw_metadata = MetaData()
raw_items = Table(
    "bench_raw_items",
    raw_metadata,
    Column("id", String(64), primary_key=True),
    Column("creation_time", Float, nullable=False),
    Column("group", String(128), nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("label", Text, nullable=False),
    Index("bench_raw_items_by_group", "group", "n"),
)
RAW_INSERT = insert(raw_items)
RAW_GET = select(raw_items).where(raw_items.c.id == bindparam("id"))
RAW_RANGE = (
    select(raw_items)
    .where(raw_items.c.group == bindparam("g"))
    .order_by(raw_items.c.n)
    .limit(RANGE_SIZE)
)


@dataclass(frozen=True)
class Timing:
    ops: int
    seconds: float
    round_rates: tuple[float, ...]
    statements_per_op: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds


@dataclass(frozen=True)
class Comparison:
    database: str
    operation: str
    engine: Timing
    raw: Timing

    @property
    def ratio(self) -> float:
        return self.engine.rate / self.raw.rate

    @property
    def round_ratios(self) -> tuple[float, float]:
        ratios = [e / r for e, r in zip(self.engine.round_rates, self.raw.round_rates, strict=True)]
        return min(ratios), max(ratios)


class StatementCounter:
    """Counts the SQL statements an engine sends (BEGIN and COMMIT are not statements here)."""

    def __init__(self, *engines: AsyncEngine) -> None:
        self.count = 0
        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            self.count += 1


class Data:
    """The rows both sides write and read, drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def label(self) -> str:
        return "".join(self.rng.choices(string.ascii_lowercase, k=self.rng.randint(8, 24)))

    def read_rows(self) -> list[dict[str, Any]]:
        """``GROUPS`` groups of ``PER_GROUP`` rows each: what the reads find."""
        rows = [
            {"group": f"g{g:02d}", "n": self.rng.randrange(1_000_000), "label": self.label()}
            for g in range(GROUPS)
            for _ in range(PER_GROUP)
        ]
        self.rng.shuffle(rows)
        return rows

    def write_row(self) -> dict[str, Any]:
        """A row for the insert benchmark, in groups the reads never look at."""
        return {
            "group": f"w{self.rng.randrange(100):02d}",
            "n": self.rng.randrange(1_000_000),
            "label": self.label(),
        }

    def raw_id(self) -> str:
        return self.rng.randbytes(16).hex()

    def read_group(self) -> str:
        return f"g{self.rng.randrange(GROUPS):02d}"


@dataclass
class Target:
    """One database, set up for both sides: the engine's store and a plain SQL engine."""

    name: str
    engine: Engine
    sql: AsyncEngine
    driver: Driver


# ---- the raw driver: the engine's durable rows, written by hand ----------------------------

DRIVER_TABLES = (
    "CREATE TABLE bench_drv_documents (doc_id TEXT PRIMARY KEY, table_name TEXT NOT NULL,"
    " value TEXT NOT NULL)",
    "CREATE TABLE bench_drv_index_entries (index_name TEXT NOT NULL, key {blob} NOT NULL,"
    " doc_id TEXT NOT NULL, PRIMARY KEY (index_name, key))",
    "CREATE TABLE bench_drv_log (ts BIGINT NOT NULL, seq INTEGER NOT NULL, table_name TEXT NOT"
    " NULL, doc_id TEXT NOT NULL, value TEXT, PRIMARY KEY (ts, seq))",
    "CREATE INDEX bench_drv_log_by_doc ON bench_drv_log (doc_id, ts)",
    "CREATE TABLE bench_drv_commits (ts BIGINT PRIMARY KEY, function_path TEXT, identity TEXT,"
    " write_set TEXT NOT NULL)",
)


class Driver:
    """One durable insert as the engine stores it, through the bare driver."""

    def __init__(self, indexes: list[str]) -> None:
        self.indexes = indexes
        self.last_ts = 0

    def rows(self, data: Data) -> tuple[Any, ...]:
        doc_id = data.raw_id()
        row = data.write_row()
        document = json.dumps({"_id": doc_id, "_creationTime": time.time() * 1000.0, **row})
        keys = [(name, data.rng.randbytes(40)) for name in self.indexes]
        write_set = json.dumps(
            {"ids": [doc_id], "keys": {name: [key.hex()] for name, key in keys}},
            separators=(",", ":"),
        )
        self.last_ts = max(time.time_ns(), self.last_ts + 1)
        return doc_id, document, keys, write_set, self.last_ts

    async def insert(self, data: Data) -> object:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class SqliteDriver(Driver):
    def __init__(self, path: Path, indexes: list[str]) -> None:
        super().__init__(indexes)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        for ddl in DRIVER_TABLES:
            self.db.execute(ddl.format(blob="BLOB"))

    async def insert(self, data: Data) -> object:
        doc_id, document, keys, write_set, ts = self.rows(data)
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO bench_drv_documents VALUES (?, 'items', ?)", (doc_id, document))
        db.executemany(
            "INSERT INTO bench_drv_index_entries VALUES (?, ?, ?)",
            [(name, key, doc_id) for name, key in keys],
        )
        db.execute(
            "INSERT INTO bench_drv_commits VALUES (?, 'items:insert', NULL, ?)", (ts, write_set)
        )
        db.execute("INSERT INTO bench_drv_log VALUES (?, 0, 'items', ?, ?)", (ts, doc_id, document))
        db.execute("COMMIT")
        return doc_id

    async def close(self) -> None:
        self.db.close()


class PostgresDriver(Driver):
    conn: asyncpg.Connection

    @classmethod
    async def open(cls, dsn: str, schema: str, indexes: list[str]) -> PostgresDriver:
        driver = cls(indexes)
        driver.conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        for ddl in DRIVER_TABLES:
            await driver.conn.execute(ddl.format(blob="BYTEA"))
        c = driver.conn
        driver.doc = await c.prepare("INSERT INTO bench_drv_documents VALUES ($1, 'items', $2)")
        driver.keys = await c.prepare(
            "INSERT INTO bench_drv_index_entries SELECT * FROM unnest($1::text[], $2::bytea[],"
            " $3::text[])"
        )
        driver.commit = await c.prepare(
            "INSERT INTO bench_drv_commits VALUES ($1, 'items:insert', NULL, $2)"
        )
        driver.log = await c.prepare("INSERT INTO bench_drv_log VALUES ($1, 0, 'items', $2, $3)")
        return driver

    async def insert(self, data: Data) -> object:
        doc_id, document, keys, write_set, ts = self.rows(data)
        async with self.conn.transaction():
            await self.doc.fetch(doc_id, document)
            await self.keys.fetch(
                [name for name, _ in keys], [key for _, key in keys], [doc_id] * len(keys)
            )
            await self.commit.fetch(ts, write_set)
            await self.log.fetch(ts, doc_id, document)
        return doc_id

    async def close(self) -> None:
        await self.conn.close()


# ---- setting up the databases ------------------------------------------------------------


def _indexes(engine: Engine) -> list[str]:
    return [i.qualified_name for i in engine.schema.indexes_of("items")]


async def _engine_for(store: Store) -> Engine:
    """The benchmark app's engine, its schema deployed (commits check the deploy fence)."""
    app = load_app("benchmarks.app.schema", "benchmarks.app.functions")
    engine = Engine(
        store,
        app,
        system_schema=system_schema(),
        system_functions=system_functions(),
        runtime=Runtime(),
    )
    report = await deploy(store, engine.code_schema)
    if not report.ok:
        raise RuntimeError(report.format())
    await engine.load_deployment()
    return engine


@asynccontextmanager
async def attached(engine: Engine) -> AsyncIterator[None]:
    """The sync coordinator, as the server attaches it (every commit wakes it)."""
    coordinator = SyncCoordinator(engine)
    await coordinator.start()
    try:
        yield
    finally:
        await coordinator.stop()


async def postgres_version(url: str) -> str:
    admin = create_db_engine(url)
    try:
        async with admin.connect() as conn:
            return str((await conn.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await admin.dispose()


@asynccontextmanager
async def sqlite_target() -> AsyncIterator[Target]:
    directory = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    url = f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}"
    store = Store(url)
    sql = create_db_engine(url)
    try:
        await upgrade(store.engine)
        engine = await _engine_for(store)
        driver = SqliteDriver(directory / "driver.sqlite3", _indexes(engine))
        try:
            async with attached(engine):
                yield Target("sqlite", engine, sql, driver)
        finally:
            await driver.close()
    finally:
        await sql.dispose()
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
        sql = create_db_engine(url, pg_schema=schema)
        try:
            await upgrade(store.engine)
            engine = await _engine_for(store)
            driver = await PostgresDriver.open(libpq_dsn(url), schema, _indexes(engine))
            try:
                async with attached(engine):
                    yield Target("postgres", engine, sql, driver)
            finally:
                await driver.close()
        finally:
            await sql.dispose()
            await store.close()
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def prepopulate(target: Target, data: Data) -> tuple[list[str], list[str]]:
    """Write the same rows on both sides; return the engine's ids and the raw table's ids."""
    rows = data.read_rows()
    engine_ids: list[str] = []
    for start in range(0, len(rows), 500):
        batch = rows[start : start + 500]

        async def body(txn: Transaction, batch: list[dict[str, Any]] = batch) -> None:
            db = DatabaseWriter(txn)
            engine_ids.extend([await db.insert("items", row) for row in batch])

        await target.engine.write(body, function_path="bench:prepopulate")
    now_ms = time.time() * 1000.0
    raw_rows = [{"id": data.raw_id(), "creation_time": now_ms, **row} for row in rows]
    async with target.sql.begin() as conn:
        await conn.run_sync(raw_metadata.create_all)
        await conn.execute(RAW_INSERT, raw_rows)
    async with target.sql.begin() as conn:
        # fresh statistics for both sides, so the planner uses the indexes
        for table_name in ("documents", "index_entries", "commits", raw_items.name):
            await conn.execute(text(f"ANALYZE {table_name}"))
    return engine_ids, [row["id"] for row in raw_rows]


# ---- the operations ----------------------------------------------------------------------


def operations(
    target: Target, data: Data, engine_ids: list[str], raw_ids: list[str]
) -> dict[str, tuple[Operation, Operation]]:
    """For each operation, the engine's way and the raw SQL way of doing it."""
    engine, sql = target.engine, target.sql

    async def engine_insert() -> object:
        return (await engine.run_mutation("items:insert", data.write_row())).value

    async def raw_insert() -> object:
        row = {"id": data.raw_id(), "creation_time": time.time() * 1000.0, **data.write_row()}
        async with sql.begin() as conn:
            await conn.execute(RAW_INSERT, row)
        return row["id"]

    async def engine_get() -> object:
        return await engine.run_query("items:get", {"id": data.rng.choice(engine_ids)})

    async def raw_get() -> object:
        async with sql.connect() as conn:
            found = (await conn.execute(RAW_GET, {"id": data.rng.choice(raw_ids)})).mappings()
            row = found.first()
        return None if row is None else dict(row)

    async def engine_range() -> object:
        found = await engine.run_query("items:range", {"group": data.read_group()})
        assert len(found) == RANGE_SIZE
        return found

    async def raw_range() -> object:
        async with sql.connect() as conn:
            rows = (await conn.execute(RAW_RANGE, {"g": data.read_group()})).mappings().all()
        assert len(rows) == RANGE_SIZE
        return [dict(row) for row in rows]

    async def driver_insert() -> object:
        return await target.driver.insert(data)

    return {
        "insert": (engine_insert, raw_insert),
        "insert, driver": (engine_insert, driver_insert),
        "get by id": (engine_get, raw_get),
        f"range of {RANGE_SIZE}": (engine_range, raw_range),
    }


# ---- measuring ---------------------------------------------------------------------------


async def run_for(operation: Operation, seconds: float) -> tuple[int, float]:
    """Call ``operation`` back to back for ``seconds``; return the calls and the time taken."""
    ops = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        await operation()
        ops += 1
        now = time.perf_counter()
    return ops, now - start


async def statements_per_op(operation: Operation, counter: StatementCounter) -> float:
    """Warm ``operation`` up (pools, statement caches) and count its SQL statements."""
    before = counter.count
    ops, _ = await run_for(operation, WARMUP_SECONDS)
    return (counter.count - before) / ops


async def compare(
    target: Target,
    name: str,
    sides: tuple[Operation, Operation],
    counters: tuple[StatementCounter, StatementCounter],
    rounds: int,
    seconds: float,
) -> Comparison:
    """Time both sides of one operation in alternating rounds; index 0 is the engine."""
    statements = [await statements_per_op(op, c) for op, c in zip(sides, counters, strict=True)]
    calls = [0, 0]
    elapsed = [0.0, 0.0]
    rates: list[list[float]] = [[], []]
    for round_number in range(rounds):
        for side in (0, 1) if round_number % 2 == 0 else (1, 0):
            ops, taken = await run_for(sides[side], seconds / rounds)
            calls[side] += ops
            elapsed[side] += taken
            rates[side].append(ops / taken)
    engine, raw = (Timing(calls[s], elapsed[s], tuple(rates[s]), statements[s]) for s in (0, 1))
    return Comparison(target.name, name, engine, raw)


async def bench(target: Target, args: argparse.Namespace) -> list[Comparison]:
    data = Data(args.seed)
    engine_ids, raw_ids = await prepopulate(target, data)
    counters = (StatementCounter(*target.engine.store.engines), StatementCounter(target.sql))
    results = []
    for name, sides in operations(target, data, engine_ids, raw_ids).items():
        result = await compare(target, name, sides, counters, args.rounds, args.seconds)
        print(f"  {target.name:<8} {name:<12} ratio {result.ratio:.2f}", flush=True)
        results.append(result)
    return results


# ---- reporting ---------------------------------------------------------------------------


def render(results: list[Comparison]) -> str:
    header = (
        "database",
        "operation",
        "engine ops/s",
        "raw ops/s",
        "engine/raw",
        "rounds min-max",
        "SQL stmts/op (eng / raw)",
        "goal",
    )
    lines = [header]
    for r in results:
        low, high = r.round_ratios
        goal = "-"
        if r.operation == "insert":
            goal = f">= {GOAL_RATIO}: " + ("met" if r.ratio >= GOAL_RATIO else "missed")
        elif r.operation == "insert, driver":
            goal = f">= {DRIVER_GOAL_RATIO}: " + (
                "met" if r.ratio >= DRIVER_GOAL_RATIO else "missed"
            )
        lines.append(
            (
                r.database,
                r.operation,
                f"{r.engine.rate:,.0f}",
                f"{r.raw.rate:,.0f}",
                f"{r.ratio:.2f}",
                f"{low:.2f}-{high:.2f}",
                f"{r.engine.statements_per_op:.0f} / {r.raw.statements_per_op:.0f}",
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


def describe_setup(args: argparse.Namespace, versions: list[str]) -> str:
    command = shlex.join(["python", "-m", "benchmarks.bench_engine", *sys.argv[1:]])
    libraries = ", ".join(f"{p} {version(p)}" for p in ("sqlalchemy", "aiosqlite", "asyncpg"))
    return "\n".join(
        [
            f"command: {command}",
            f"python: {platform.python_implementation()} {platform.python_version()}",
            f"databases: {'; '.join(versions)}",
            f"libraries: {libraries}",
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            f"runs: {args.rounds} alternating rounds per side, {args.seconds:g} s per side "
            f"per operation, sequential calls, seed {args.seed}",
        ]
    )


# ---- the command -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_engine", description=__doc__)
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="measured time per side (engine, raw) and operation, split into rounds (default 3)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="alternating rounds, order flipped each round (default 6)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="PostgreSQL to measure in a fresh schema (default: $TEST_POSTGRES_URL)",
    )
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="measure one database")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data (default 1)")
    parser.add_argument(
        "--call-log",
        action="store_true",
        help="write every call's structured line, as a server does (INFO, and FUNCTION_LOG)",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be positive and --rounds at least 1")
    return args


async def main(args: argparse.Namespace) -> int:
    targets: list[Callable[[], AbstractAsyncContextManager[Target]]] = []
    versions = []
    if args.only in (None, "sqlite"):
        targets.append(sqlite_target)
        versions.append(f"SQLite {sqlite3.sqlite_version}")
    if args.only in (None, "postgres"):
        try:
            versions.append(f"PostgreSQL {await postgres_version(args.postgres_url)}")
        except (OSError, DBAPIError) as exc:
            print(f"PostgreSQL at {args.postgres_url} is unreachable ({exc}); see --help")
            return 2
        targets.append(lambda: postgres_target(args.postgres_url))
    print(describe_setup(args, versions), flush=True)
    if args.call_log:
        # as a server logs: the line on the root's handler (here a file, not the terminal)
        # and on FUNCTION_LOG
        import logging
        import tempfile

        from backend.udf.calls import write_calls_to

        where = Path(tempfile.mkdtemp(prefix="bench-calls-"))
        logging.basicConfig(level=logging.INFO, filename=where / "server.log")
        write_calls_to(where / "functions.jsonl")
        print(f"call log: {where}", flush=True)
    started = time.perf_counter()
    results: list[Comparison] = []
    for make_target in targets:
        async with make_target() as target:
            results.extend(await bench(target, args))
    print()
    print(render(results))
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
