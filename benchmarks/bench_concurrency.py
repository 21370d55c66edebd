"""Writers in parallel on PostgreSQL: commits/s, latency and retries as callers are added.

Run as ``python -m benchmarks.bench_concurrency``. In a fresh PostgreSQL schema (dropped at the
end) it runs the mutation ``items:touch`` (read the first document of a group through the
index ``by_group``, move its ``n`` on by one: the index key changes) from 1, 4, 16 and 64
concurrent callers, each calling back to back for a few seconds:

- *distinct documents*: every caller touches a group of its own, so no two commits meet;
- *one hot document*: every caller touches the same group.

Each cell runs in one server process, then in two (the callers split between them), each a
separate Python process with its own engine (``--child``), on the same database. Printed per
cell: commits/s, p50 and p99 latency of a call, retries per commit (attempts run again, from
``Engine.retries``), ``CONFLICT`` errors (a caller that ran out of attempts), and how busy the
machine's CPU was over the cell (every core: the server processes, PostgreSQL and the benchmark
itself; from ``/proc/stat``), which says when the cores, not the design, are the limit. Then
each goal of the concurrency issue with "met" or "missed".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from backend.engine import Engine
from backend.errors import ConvexError
from backend.runtime import Runtime
from backend.storage.database import create_db_engine
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.udf.app import load_app

CALLERS = (1, 4, 16, 64)
MODES = ("distinct", "hot")
WARMUP_SECONDS = 0.3


# ---- a server process (the child) -----------------------------------------------------------


async def _engine(url: str, schema: str) -> Engine:
    app = load_app("benchmarks.app.schema", "benchmarks.app.functions")
    engine = Engine(
        Store(url, pg_schema=schema),
        app,
        system_schema=system_schema(),
        system_functions=system_functions(),
        runtime=Runtime(),
    )
    await engine.load_deployment()
    return engine


async def _cell(
    engine: Engine, mode: str, callers: int, first: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    conflicts = 0
    measuring = False
    commits = 0
    stop_at = time.perf_counter() + WARMUP_SECONDS + seconds

    async def caller(k: int) -> None:
        nonlocal conflicts, commits
        group = "hot" if mode == "hot" else f"c{first + k}"
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            try:
                await engine.run_mutation("items:touch", {"group": group})
            except ConvexError as error:
                if error.data.get("code") != "CONFLICT":
                    raise
                conflicts += 1
                continue
            if measuring:
                latencies.append((time.perf_counter() - started) * 1000)
                commits += 1

    tasks = [asyncio.create_task(caller(k)) for k in range(callers)]
    await asyncio.sleep(WARMUP_SECONDS)
    measuring = True
    retries_before = engine.retries
    begun = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - begun
    return {
        "commits": commits,
        "seconds": elapsed,
        "retries": engine.retries - retries_before,
        "conflicts": conflicts,
        "latencies": latencies,
    }


async def child(url: str, schema: str) -> None:
    """Serve cells: one JSON command per line on stdin, one JSON result per line on stdout."""
    engine = await _engine(url, schema)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                return
            cmd = json.loads(line)
            result = await _cell(engine, cmd["mode"], cmd["callers"], cmd["first"], cmd["seconds"])
            print(json.dumps(result), flush=True)
    finally:
        await engine.store.close()


# ---- the orchestrator -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    processes: int
    mode: str
    callers: int
    commits: int
    seconds: float
    retries: int
    conflicts: int
    p50: float
    p99: float
    cpu: float  # the machine's CPU busy over the cell, 0-1 (all cores: server, database, all)

    @property
    def rate(self) -> float:
        return self.commits / self.seconds

    @property
    def retries_per_commit(self) -> float:
        return self.retries / max(self.commits, 1)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Server:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, schema: str) -> Server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.bench_concurrency",
            "--child",
            url,
            schema,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # a cell's result is one line with every call's latency
        )
        server = cls(proc)
        assert (await server._read())["ready"]
        return server

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=300)
        if not line:
            raise RuntimeError("a server process ended early")
        result: dict[str, Any] = json.loads(line)
        return result

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._read()

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write(b"\n")
            await self.proc.stdin.drain()
        await asyncio.wait_for(self.proc.wait(), timeout=60)


async def measure(servers: list[Server], mode: str, callers: int, seconds: float) -> Cell:
    share = [
        callers // len(servers) + (1 if i < callers % len(servers) else 0)
        for i in range(len(servers))
    ]
    firsts = [sum(share[:i]) for i in range(len(servers))]
    busy = [(s, n, f) for s, n, f in zip(servers, share, firsts, strict=True) if n]
    before = _cpu_times()
    results = await asyncio.gather(
        *(s.run({"mode": mode, "callers": n, "first": f, "seconds": seconds}) for s, n, f in busy)
    )
    after = _cpu_times()
    latencies = [x for r in results for x in r["latencies"]]
    commits = sum(r["commits"] for r in results)
    return Cell(
        processes=len(servers),
        mode=mode,
        callers=callers,
        commits=commits,
        seconds=max(r["seconds"] for r in results),
        retries=sum(r["retries"] for r in results),
        conflicts=sum(r["conflicts"] for r in results),
        p50=_percentile(latencies, 0.5),
        p99=_percentile(latencies, 0.99),
        cpu=_busy(before, after),
    )


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (Linux ``/proc/stat``; (0, 0) elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else float("nan")


async def setup(url: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await admin.dispose()
    store = Store(url, pg_schema=schema)
    try:
        await upgrade(store.engine)
        app = load_app("benchmarks.app.schema", "benchmarks.app.functions")
        engine = Engine(
            store, app, system_schema=system_schema(), system_functions=system_functions()
        )
        report = await deploy(store, engine.code_schema)
        if not report.ok:
            raise RuntimeError(report.format())
        await engine.load_deployment()
        for group in ["hot", *(f"c{k}" for k in range(max(CALLERS)))]:
            await engine.run_mutation("items:touch", {"group": group})
        async with store.engine.begin() as conn:
            for table_name in ("documents", "index_entries", "commits", "log"):
                await conn.execute(text(f"ANALYZE {table_name}"))
    finally:
        await store.close()
    return schema


async def drop(url: str, schema: str) -> None:
    admin = create_db_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def render(cells: list[Cell]) -> str:
    header = (
        "processes",
        "documents",
        "callers",
        "commits/s",
        "p50 ms",
        "p99 ms",
        "retries/commit",
        "CONFLICT",
        "machine CPU",
    )
    lines = [header]
    for c in cells:
        lines.append(
            (
                str(c.processes),
                "distinct" if c.mode == "distinct" else "one hot",
                str(c.callers),
                f"{c.rate:,.0f}",
                f"{c.p50:.1f}",
                f"{c.p99:.1f}",
                f"{c.retries_per_commit:.2f}",
                str(c.conflicts),
                f"{c.cpu:.0%}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rows = [
        "| " + " | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    rows.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(rows)


def goals(cells: list[Cell]) -> list[tuple[str, bool, str]]:
    def cell(p: int, mode: str, n: int) -> Cell:
        return next(c for c in cells if (c.processes, c.mode, c.callers) == (p, mode, n))

    distinct = [cell(1, "distinct", n) for n in CALLERS]
    rates = [c.rate for c in distinct]
    never_falls = all(b >= a for a, b in itertools.pairwise(rates))
    out = [
        (
            "distinct documents: commits/s never falls from 1 to 64 callers",
            never_falls,
            " -> ".join(f"{r:,.0f}" for r in rates),
        ),
        (
            "distinct documents: 16 callers at least 3x one caller",
            distinct[2].rate >= 3 * distinct[0].rate,
            f"{distinct[2].rate / distinct[0].rate:.2f}x",
        ),
        (
            "distinct documents: retries per commit under 0.01 (every cell)",
            all(c.retries_per_commit < 0.01 for c in cells if c.mode == "distinct"),
            f"max {max(c.retries_per_commit for c in cells if c.mode == 'distinct'):.3f}",
        ),
    ]
    hot1, hot64 = cell(1, "hot", 1), cell(1, "hot", 64)
    out += [
        (
            "one hot document, 64 callers: commits/s at least the 1-caller rate",
            hot64.rate >= hot1.rate,
            f"{hot64.rate:,.0f} vs {hot1.rate:,.0f} ({hot64.rate / hot1.rate:.2f}x)",
        ),
        (
            "one hot document, 64 callers: p99 under 20x the 1-caller p99",
            hot64.p99 < 20 * hot1.p99,
            f"{hot64.p99:.0f} ms vs {hot1.p99:.1f} ms ({hot64.p99 / hot1.p99:.1f}x)",
        ),
        (
            "one hot document: no CONFLICT errors (every cell)",
            all(c.conflicts == 0 for c in cells if c.mode == "hot"),
            f"{sum(c.conflicts for c in cells)} errors",
        ),
    ]
    one16, two16 = cell(1, "distinct", 16), cell(2, "distinct", 16)
    out.append(
        (
            "two processes at 16 distinct callers: at least 1.5x one process",
            two16.rate >= 1.5 * one16.rate,
            f"{two16.rate:,.0f} vs {one16.rate:,.0f} ({two16.rate / one16.rate:.2f}x)",
        )
    )
    return out


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    command = shlex.join(["python", "-m", "benchmarks.bench_concurrency", *sys.argv[1:]])
    print(f"command: {command}")
    print(f"python: {platform.python_version()}; {os.cpu_count()} cores, {platform.platform()}")
    print(f"cells: {args.seconds:g} s each after {WARMUP_SECONDS:g} s warm-up", flush=True)
    schema = await setup(args.postgres_url)
    servers: list[Server] = []
    cells: list[Cell] = []
    try:
        servers = [await Server.start(args.postgres_url, schema) for _ in range(2)]
        for processes in (1, 2):
            for mode in MODES:
                for callers in CALLERS:
                    result = await measure(servers[:processes], mode, callers, args.seconds)
                    cells.append(result)
                    print(
                        f"  {processes} process(es), {mode:<8} {callers:>2} callers: "
                        f"{result.rate:,.0f}/s, p99 {result.p99:.0f} ms",
                        flush=True,
                    )
    finally:
        for server in servers:
            await server.stop()
        await drop(args.postgres_url, schema)
    print()
    print(render(cells))
    print()
    for goal, met, figure in goals(cells):
        print(f"{'met   ' if met else 'missed'} {goal}: {figure}")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_concurrency", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=2.5, help="measured time per cell (2.5)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        asyncio.run(child(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(asyncio.run(main(parse_args())))
