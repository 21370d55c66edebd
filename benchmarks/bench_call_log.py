"""What the per-call features cost: the structured call line (and its file), and return checks.

Run as ``python -m benchmarks.bench_call_log``. On a SQLite file (the harness's engine, the
benchmark app of ``benchmarks/app``: 2,000 small documents in 20 groups), it times the same
three calls as ``bench_engine`` (``items:insert``, ``items:get``, ``items:range`` of 100) in
alternating rounds (the order flips every round, so machine noise falls on both sides):

- **call log**: with every call's structured line written as a server writes it (the
  ``backend.functions`` logger at INFO, to a file handler standing in for the server's output,
  and to ``FUNCTION_LOG``), against the same calls with the line off;
- **returns**: with the functions' declared return types checked (``-> list[dict[str, Any]]``
  and ``-> dict[str, Any] | None``, the fast path), against the same functions unchecked.

Rates are operations per second of this process's CPU time (its SQLite threads included), so
that other work on a shared machine does not count. A ratio is the rate with the feature over
the rate without; the goal is at least 0.85 for the
call log and 0.95 for return checks (an operation's cost should barely move).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from backend.testing import TestBackend
from backend.udf.app import load_app
from backend.udf.calls import CallLogFile

GOALS = {"call log": 0.85, "returns": 0.95}


def _calls(
    t: TestBackend, ids: list[str], rng: random.Random
) -> dict[str, Callable[[], Awaitable[Any]]]:
    engine = t.engine

    async def insert() -> Any:
        return await engine.run_mutation(
            "items:insert", {"group": "g", "n": rng.randrange(1000), "label": "x"}
        )

    async def get() -> Any:
        return await engine.run_query("items:get", {"id": rng.choice(ids)})

    async def range_() -> Any:
        return await engine.run_query("items:range", {"group": f"g{rng.randrange(20)}"})

    return {"insert": insert, "get by id": get, "range of 100": range_}


async def _rate(call: Callable[[], Awaitable[Any]], seconds: float) -> tuple[int, float]:
    # The process's CPU time (its SQLite threads included), not the wall clock: on a machine
    # shared with other work, waiting for a core is not a cost of the feature.
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        await call()
        done += 1
    return done, time.process_time() - cpu


class CallLogOn:
    def __init__(self, where: Path) -> None:
        self.logger = logging.getLogger("backend.functions")
        self.handlers: list[logging.Handler] = [
            logging.FileHandler(where / "server.log"),
            CallLogFile(where / "functions.jsonl"),
        ]

    def __enter__(self) -> None:
        self.logger.setLevel(logging.INFO)
        for handler in self.handlers:
            self.logger.addHandler(handler)

    def __exit__(self, *_exc: object) -> None:
        for handler in self.handlers:
            self.logger.removeHandler(handler)
        self.logger.setLevel(logging.WARNING)


class ReturnsOff:
    def __init__(self, t: TestBackend) -> None:
        self.functions = [
            t.engine.functions[p] for p in ("items:get", "items:range", "items:insert")
        ]
        self.saved = [(f._returns, f._fits) for f in self.functions]

    def __enter__(self) -> None:
        for f in self.functions:
            f._returns, f._fits = None, None

    def __exit__(self, *_exc: object) -> None:
        for f, (returns, fits) in zip(self.functions, self.saved, strict=True):
            f._returns, f._fits = returns, fits


class Nothing:
    def __enter__(self) -> None: ...

    def __exit__(self, *_exc: object) -> None: ...


async def main(args: argparse.Namespace) -> int:
    logging.getLogger("backend.functions").setLevel(logging.WARNING)
    where = Path(tempfile.mkdtemp(prefix="bench-call-log-"))
    rng = random.Random(args.seed)
    app = load_app("benchmarks.app.schema", "benchmarks.app.functions")
    print(
        f"command: python -m benchmarks.bench_call_log --seconds {args.seconds} "
        f"--rounds {args.rounds}\npython: {sys.version.split()[0]}; SQLite; sequential calls",
        flush=True,
    )
    rows = []
    try:
        async with TestBackend(app=app) as t:
            ids = [
                (await t.engine.run_mutation(
                    "items:insert", {"group": f"g{i % 20}", "n": i, "label": "abc"}
                )).value
                for i in range(2000)
            ]  # fmt: skip
            calls = _calls(t, ids, rng)
            sides: dict[str, tuple[Any, Any]] = {
                "call log": (CallLogOn(where), Nothing()),
                "returns": (Nothing(), ReturnsOff(t)),
            }
            per_round = args.seconds / args.rounds
            for feature, (with_it, without_it) in sides.items():
                for name, call in calls.items():
                    totals = {"with": [0, 0.0], "without": [0, 0.0]}
                    ratios = []
                    for round_ in range(args.rounds):
                        order = [("with", with_it), ("without", without_it)]
                        if round_ % 2:
                            order.reverse()
                        rates = {}
                        for side, context in order:
                            with context:
                                done, took = await _rate(call, per_round)
                            totals[side][0] += done
                            totals[side][1] += took
                            rates[side] = done / took
                        ratios.append(rates["with"] / rates["without"])
                    on = totals["with"][0] / totals["with"][1]
                    off = totals["without"][0] / totals["without"][1]
                    ratio = on / off
                    goal = GOALS[feature]
                    verdict = "met" if ratio >= goal else "missed"
                    rows.append(
                        f"| {feature:<8} | {name:<12} | {on:>9,.0f} | {off:>9,.0f} | {ratio:.2f} "
                        f"| {min(ratios):.2f}-{max(ratios):.2f} | {verdict} (>= {goal}) |"
                    )
    finally:
        shutil.rmtree(where, ignore_errors=True)
    print(
        "\n| feature  | operation    | with ops/cpu-s | without ops/cpu-s | with/without "
        "| rounds | goal |"
    )
    print("|----------|--------------|-----------|-----------|------|--------|------|")
    print("\n".join(rows))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_call_log", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per side and operation")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
