"""Operations that grow with the data: ``verify-log`` and log compaction at 10x the documents.

Run as ``python -m benchmarks.bench_ops``. For each database (a SQLite file in a temporary
directory, and a fresh PostgreSQL schema whose ``log`` autovacuum never analyzes) and each size
in ``--docs`` (default 10,000 and 100,000), it writes that many documents of about
``--doc-bytes`` through the engine (``benchmarks/deployapp/indexed.py``: a table with an index,
2,000 inserts per commit), then patches every one of them once (a second log row each), and
then:

- **verify**: ``verify_log`` in a fresh process (``--child``), which reports its peak resident
  memory (``ru_maxrss``) and the resident memory it had before the verify began (the
  interpreter and its imports);
- **compact**: ``compact_log`` up to the newest commit (it drops every document's first
  version), with no planner statistics on PostgreSQL;
- **verify after compact**: ``verify_log`` again, which must still pass.

Goals, each at the largest size against the smallest (N and 10N documents by default):
verify's peak resident memory at most 1.5x (bounded, not growing with the data), and verify's
and compaction's time per document at most 2x (linear, not quadratic). ``--previous REV``
also runs ``verify.py`` as it was at git revision ``REV`` on the same data (a baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import resource
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.storage.compact import compact_log
from backend.storage.database import DatabaseKind, create_db_engine
from backend.storage.deploy import deploy
from backend.storage.store import Store
from backend.storage.verify import verify_log
from backend.transactions.transaction import DatabaseWriter, Transaction
from benchmarks.bench_deploy import Target, engine_for, postgres_target, sqlite_target

MEMORY_GOAL = 1.5
TIME_GOAL = 2.0
PER_COMMIT = 2000


async def fill(store: Store, docs: int, doc_bytes: int) -> None:
    if store.kind is DatabaseKind.POSTGRESQL:
        async with store.engine.begin() as conn:  # the planner is to learn nothing of the log
            await conn.execute(text("ALTER TABLE log SET (autovacuum_enabled = false)"))
    engine = engine_for(store, "indexed")
    report = await deploy(store, engine.code_schema)
    if not report.ok:
        raise RuntimeError(report.format())
    await engine.load_deployment()
    padding = "x" * doc_bytes
    ids: list[str] = []
    for start in range(0, docs, PER_COMMIT):

        async def insert(txn: Transaction, start: int = start) -> None:
            db = DatabaseWriter(txn)
            for i in range(start, min(docs, start + PER_COMMIT)):
                ids.append(
                    await db.insert("items", {"group": f"g{i % 20}", "n": i, "label": padding})
                )

        await engine.write(insert, function_path="bench:fill")
    for start in range(0, docs, PER_COMMIT):

        async def patch(txn: Transaction, start: int = start) -> None:
            db = DatabaseWriter(txn)
            for doc_id in ids[start : start + PER_COMMIT]:
                await db.patch(doc_id, {"note": "patched"})

        await engine.write(patch, function_path="bench:patch")


@dataclass
class Verified:
    ok: bool
    seconds: float
    rss_start_mb: float
    rss_peak_mb: float


async def verify_in_child(store: Store, module: Path | None = None) -> Verified:
    """``verify_log`` in a process of its own, so that its peak memory is its own; from the
    file ``module`` (an earlier ``verify.py``) if given."""
    extra = ["--child-module", str(module)] if module is not None else []
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bench_ops",
        "--child",
        store.url,
        store.pg_schema or "",
        *extra,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the verify process failed ({child.returncode})")
    return Verified(**json.loads(out))


def previous_verify(revision: str) -> Path:
    """``backend/storage/verify.py`` as it was at ``revision``, in a temporary file."""
    source = subprocess.run(  # noqa: S603 - git, with a revision the caller named
        ["git", "show", f"{revision}:backend/storage/verify.py"],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-ops-")) / "verify.py"
    path.write_text(source)
    return path


def load_previous(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("previous_verify", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


async def child_verify(url: str, pg_schema: str, module: Path | None) -> None:
    verify = verify_log if module is None else load_previous(module).verify_log
    store = Store(url, pg_schema=pg_schema or None)
    try:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        began = time.perf_counter()
        report = await verify(store)
        seconds = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        await store.close()
    if not report.ok:
        print(report.difference, file=sys.stderr)
    print(
        json.dumps(
            {"ok": report.ok, "seconds": seconds, "rss_start_mb": start, "rss_peak_mb": peak}
        )
    )


@dataclass
class Size:
    database: str
    docs: int
    log_rows: int
    fill_s: float
    verify: Verified
    compact_s: float
    rows_removed: int
    verify_after: Verified
    previous: Verified | None


async def bench(target: Target, docs: int, args: argparse.Namespace) -> Size:
    store = target.store
    print(f"{target.name}: writing {docs:,} documents and patching each once", flush=True)
    began = time.perf_counter()
    await fill(store, docs, args.doc_bytes)
    fill_s = time.perf_counter() - began
    verified = await verify_in_child(store)
    print(f"  verify {verified.seconds:.1f} s, peak {verified.rss_peak_mb:.0f} MB", flush=True)
    previous = None
    if args.previous_module is not None:
        previous = await verify_in_child(store, args.previous_module)
        print(
            f"  previous verify {previous.seconds:.1f} s, peak {previous.rss_peak_mb:.0f} MB",
            flush=True,
        )
    began = time.perf_counter()
    report = await compact_log(store, horizon_ts=await store.latest_ts())
    compact_s = time.perf_counter() - began
    print(f"  compact {compact_s:.1f} s, {report.rows_removed:,} rows removed", flush=True)
    after = await verify_in_child(store)
    if not (verified.ok and after.ok):
        raise RuntimeError("verify-log found a difference")
    return Size(
        target.name,
        docs,
        2 * docs,
        fill_s,
        verified,
        compact_s,
        report.rows_removed,
        after,
        previous,
    )


def _goal(ok: bool) -> str:
    return "met" if ok else "missed"


def render(sizes: list[Size]) -> str:
    header = (
        "database",
        "docs",
        "log rows",
        "verify s",
        "verify peak RSS MB (start)",
        "compact s",
        "rows removed",
        "verify after compact s",
        "previous verify s",
        "previous peak RSS MB",
    )
    lines = [header]
    for s in sizes:
        lines.append(
            (
                s.database,
                f"{s.docs:,}",
                f"{s.log_rows:,}",
                f"{s.verify.seconds:.2f}",
                f"{s.verify.rss_peak_mb:.0f} ({s.verify.rss_start_mb:.0f})",
                f"{s.compact_s:.2f}",
                f"{s.rows_removed:,}",
                f"{s.verify_after.seconds:.2f}",
                f"{s.previous.seconds:.2f}" if s.previous else "-",
                f"{s.previous.rss_peak_mb:.0f}" if s.previous else "-",
            )
        )
    return _table(lines)


def render_goals(sizes: list[Size]) -> str:
    header = ("database", "measure", "smallest", "largest", "ratio", "goal", "")
    lines = [header]
    for database in dict.fromkeys(s.database for s in sizes):
        mine = sorted((s for s in sizes if s.database == database), key=lambda s: s.docs)
        small, large = mine[0], mine[-1]
        scale = large.docs / small.docs
        memory = large.verify.rss_peak_mb / small.verify.rss_peak_mb
        lines.append(
            (
                database,
                "verify: peak RSS (MB)",
                f"{small.verify.rss_peak_mb:.0f}",
                f"{large.verify.rss_peak_mb:.0f}",
                f"{memory:.2f}",
                f"<= {MEMORY_GOAL} ({scale:g}x docs)",
                _goal(memory <= MEMORY_GOAL),
            )
        )
        for name, s_small, s_large in (
            ("verify: s per 1k docs", small.verify.seconds, large.verify.seconds),
            ("compact: s per 1k docs", small.compact_s, large.compact_s),
        ):
            per_small = s_small / small.docs * 1000
            per_large = s_large / large.docs * 1000
            ratio = per_large / per_small
            lines.append(
                (
                    database,
                    name,
                    f"{per_small:.3f}",
                    f"{per_large:.3f}",
                    f"{ratio:.2f}",
                    f"<= {TIME_GOAL} ({scale:g}x docs)",
                    _goal(ratio <= TIME_GOAL),
                )
            )
    return _table(lines)


def _table(lines: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rows = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    rows.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ops", description=__doc__)
    parser.add_argument(
        "--docs", type=int, nargs="+", default=[10_000, 100_000], help="sizes (10,000 100,000)"
    )
    parser.add_argument("--doc-bytes", type=int, default=2300, help="padding per document")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument(
        "--previous",
        metavar="REV",
        help="also run the verify.py of this git revision on the same data (a baseline)",
    )
    parser.add_argument("--child", nargs=2, metavar=("URL", "PG_SCHEMA"), help=argparse.SUPPRESS)
    parser.add_argument("--child-module", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.docs) < 1 or args.doc_bytes < 0:
        parser.error("--docs must be positive")
    return args


async def main(args: argparse.Namespace) -> int:
    if args.child:
        url, pg_schema = args.child
        await child_verify(url, pg_schema, args.child_module)
        return 0
    args.previous_module = None
    if args.previous:
        args.previous_module = await asyncio.to_thread(previous_verify, args.previous)
    makers: list[tuple[str, Any]] = []
    versions = []
    if args.only in (None, "sqlite"):
        makers.append(("sqlite", sqlite_target))
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
        makers.append(("postgres", lambda: postgres_target(args.postgres_url)))
    command = shlex.join(["python", "-m", "benchmarks.bench_ops", *sys.argv[1:]])
    libraries = ", ".join(f"{p} {version(p)}" for p in ("sqlalchemy", "aiosqlite", "asyncpg"))
    print(f"command: {command}")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"databases: {'; '.join(versions)}")
    print(f"libraries: {libraries}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"runs: {', '.join(f'{d:,}' for d in args.docs)} documents of ~{args.doc_bytes} B")
    began = time.perf_counter()
    sizes: list[Size] = []
    for _, make in makers:
        for docs in sorted(args.docs):
            async with make() as target:
                sizes.append(await bench(target, docs, args))
    print()
    print(render(sizes))
    print()
    print(render_goals(sizes))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
