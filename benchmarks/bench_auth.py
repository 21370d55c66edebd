"""Auth benchmarks: sign-in timing for unknown emails against wrong passwords, and the event
loop's latency while password checks run.

    python -m benchmarks.bench_auth [--tries 60] [--queries 400]

Both use OWASP's argon2 parameters (19 MiB, t=2, p=1), SQLite, and the real AuthService.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import timedelta

from backend.errors import ConvexError
from backend.runtime import FakeClock
from backend.testing import TestBackend
from backend.udf.context import ClientInfo
from tests.conftest import basic_app

CLIENT = ClientInfo(ip_address=None, user_agent="bench")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _sign_in_ms(t: TestBackend, clock: FakeClock, email: str) -> float:
    # A quiet day between tries: the rate limits refill and the failure record is forgotten,
    # so every try does the same work (the lockout's own refusals are not what is measured).
    clock.advance(timedelta(days=1))
    start = time.perf_counter()
    try:
        await t.auth.sign_in(email, "wrong horse battery", CLIENT)
    except ConvexError as error:
        if error.code != "INVALID_EMAIL_OR_PASSWORD":
            raise
    return (time.perf_counter() - start) * 1000


async def timing(tries: int) -> None:
    clock = FakeClock()
    async with TestBackend(app=basic_app(), clock=clock) as t:
        await t.sign_up("known@example.com", "correct horse battery")
        known: list[float] = []
        unknown: list[float] = []
        for _ in range(tries):  # alternate, so drift hits both alike
            known.append(await _sign_in_ms(t, clock, "known@example.com"))
            unknown.append(await _sign_in_ms(t, clock, "nobody@example.com"))
    k, u = statistics.median(known), statistics.median(unknown)
    spread = statistics.pstdev(known + unknown)
    print("sign-in, wrong password vs unknown email (ms, OWASP argon2id)")
    print(f"  wrong password : median {k:7.2f}  p90 {_percentile(known, 0.9):7.2f}")
    print(f"  unknown email  : median {u:7.2f}  p90 {_percentile(unknown, 0.9):7.2f}")
    print(
        f"  difference of medians {abs(k - u):.2f} ms; spread (stdev) of all tries {spread:.2f} ms"
    )
    print(f"  ratio unknown/known {u / k:.3f}")


async def loop_latency(queries: int) -> None:
    async with TestBackend(app=basic_app()) as t:
        await t.mutation("counters:create", {"name": "c"})

        async def sample() -> list[float]:
            out = []
            for _ in range(queries):
                start = time.perf_counter()
                await t.query("counters:get", {"name": "c"})
                out.append((time.perf_counter() - start) * 1000)
                await asyncio.sleep(0.001)
            return out

        idle = await sample()
        stop = asyncio.Event()
        verifications = 0
        stored = await t.auth.passwords.hash("correct horse battery")

        async def hammer() -> None:
            nonlocal verifications
            while not stop.is_set():
                await t.auth.passwords.verify(stored, "wrong horse battery")
                verifications += 1

        workers = [asyncio.create_task(hammer()) for _ in range(8)]
        started = time.perf_counter()
        busy = await sample()
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*workers)
    print(
        f"trivial query latency (ms), idle vs 8 password checks in flight ({os.cpu_count()} cores)"
    )
    print(f"  idle : p50 {statistics.median(idle):6.2f}  p99 {_percentile(idle, 0.99):6.2f}")
    print(f"  busy : p50 {statistics.median(busy):6.2f}  p99 {_percentile(busy, 0.99):6.2f}")
    print(
        f"  p99 ratio busy/idle {_percentile(busy, 0.99) / _percentile(idle, 0.99):.2f} (goal <= 2)"
    )
    print(
        f"  password checks completed meanwhile: {verifications} ({verifications / elapsed:.1f}/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=60)
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    print(
        "command: python -m benchmarks.bench_auth", f"--tries {args.tries} --queries {args.queries}"
    )
    await timing(args.tries)
    await loop_latency(args.queries)


if __name__ == "__main__":
    asyncio.run(main())
