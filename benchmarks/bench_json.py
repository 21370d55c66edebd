"""What the strict JSON decoder costs: ``convex_json.loads`` against the lenient decoder it
replaced (Python's ``json`` refusing only NaN and Infinity), on the texts it decodes most.

    python -m benchmarks.bench_json [--seconds 1.0] [--rounds 5]

The strict decoder adds a Python call per object (to refuse repeated keys), a bracket count
(and, past the depth limit's worth of brackets, a nesting scan) and a search for surrogate
escapes. Rounds alternate between the two decoders, so drift in the machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from backend.values.convex_json import dumps, loads


def _reject(_name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_LENIENT = json.JSONDecoder(parse_constant=_reject)


def lenient(text: str) -> Any:
    return _LENIENT.decode(text)


def _mutation() -> str:
    return dumps(
        {
            "type": "Mutation",
            "requestId": 12,
            "udfPath": "orgs:rename",
            "args": [{"orgId": "k57c2a9e6b7d4e2f9a510c8d7e6f5a4b", "name": "Acme Ltd"}],
        }
    )


def _query_set(queries: int) -> str:
    add = [
        {"type": "Add", "queryId": i, "udfPath": "members:list", "args": [{"orgId": f"org{i}"}]}
        for i in range(queries)
    ]
    return dumps(
        {"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": add}
    )


def _rows(count: int) -> str:
    rows = [{"name": f"row {i}", "n": i, "score": i / 7, "tags": ["a", "b"]} for i in range(count)]
    return dumps({"path": "items:import", "args": [{"rows": rows}]})


def _rate(decode: Callable[[str], Any], text: str, seconds: float) -> float:
    """Decodes per second of ``text`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            decode(text)
        count += 10
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per decoder per round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    texts = {
        "Mutation frame": _mutation(),
        "ModifyQuerySet, 100 queries": _query_set(100),
        "HTTP args, 2,000 rows": _rows(2000),
    }
    print("command: python -m benchmarks.bench_json")
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.machine()}, {platform.platform()}")
    print(f"runs: {options.rounds} alternating rounds, {options.seconds:g} s per decoder each")
    print()
    print("| text | bytes | strict µs/op | lenient µs/op | strict/lenient | rounds min-max |")
    print("|---|---|---|---|---|---|")
    for name, text in texts.items():
        assert loads(text) == lenient(text)
        ratios, strict_us, lenient_us = [], [], []
        for round_ in range(options.rounds):
            order = [(loads, strict_us), (lenient, lenient_us)]
            if round_ % 2:
                order.reverse()
            for decode, into in order:
                into.append(1e6 / _rate(decode, text, options.seconds))
            ratios.append(strict_us[-1] / lenient_us[-1])
        s, le = statistics.median(strict_us), statistics.median(lenient_us)
        print(
            f"| {name} | {len(text):,} | {s:,.1f} | {le:,.1f} | {s / le:.2f} | "
            f"{min(ratios):.2f}-{max(ratios):.2f} |"
        )


if __name__ == "__main__":
    main()
