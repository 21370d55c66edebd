"""Step-up costs: a protected mutation passing on a grant against the same mutation unprotected.

    python -m benchmarks.bench_sensitive [--calls 200] [--rounds 5] [--only sqlite|postgres]

On each database (a SQLite file on disk, in a temporary directory under the current one, and
a fresh schema on PostgreSQL) one signed-in user runs three mutations of
``tests/apps/basic/functions/protected.py`` that differ only in their gate, each bumping its
own counter:

- ``protected:unprotected``: ``ctx.auth.require_identity()`` (the baseline);
- ``protected:look``: ``require_sensitive_action`` at level 3, passing on a live grant;
- ``protected:poke``: level 4, spending a grant each call.

The engine is called as the sync server calls it for a mutation from a client:
``engine.run_mutation(path, args, identity, request=(sessionId, requestId), client=...)``, so
each call also records its outcome for a resend. The sides alternate call by call (the first
side of each round rotates), and before every timed call, whichever its side, one untimed
transaction mints a grant (the level-4 call's own, or a spare for the others), so that every
call follows the same kind of write. In a round of ``--calls`` calls per side, each call is
set against the baseline call beside it and the round's ratio is the median of those ratios;
the ratio printed is the median of the rounds' (and the times, the medians of the calls').

Goals: a level-3 call passing on a grant at most 1.2x the unprotected one; a level-4 spend at
most 1.3x.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from backend.auth.passwords import Passwords
from backend.sensitive.grants import mint_grant
from backend.testing import TestBackend, UserHandle
from backend.transactions.client import ClientInfo
from tests.conftest import basic_app

GOALS = {"protected:look": 1.2, "protected:poke": 1.3}
SIDES = ("protected:unprotected", "protected:look", "protected:poke")
LABELS = {
    "protected:unprotected": "unprotected",
    "protected:look": "level 3, live grant",
    "protected:poke": "level 4, grant spent",
}
CLIENT = ClientInfo(ip_address="127.0.0.1", user_agent="bench_sensitive")
DAY_MS = 24 * 3600 * 1000


async def _mint(t: TestBackend, user: UserHandle, action: str, resource: str) -> None:
    async def mint(ctx: Any) -> None:
        await mint_grant(
            ctx.db,
            user_id=user.user_id,
            session_id=str(user.session_id),
            action=action,
            resource=resource,
            level=4,
            method="password",
            lifetime_ms=DAY_MS,
        )

    await t.run(mint)


class Caller:
    """One client's calls, numbered as its sync session would number them."""

    def __init__(self, t: TestBackend, user: UserHandle) -> None:
        self.t = t
        self.user = user
        self.requests = itertools.count(1)

    async def call(self, path: str) -> float:
        """Mint (untimed), then the timed mutation; its seconds."""
        if path == "protected:poke":
            await _mint(self.t, self.user, "thing.poke", LABELS[path])
        else:
            await _mint(self.t, self.user, "thing.poke", "spare")
        began = time.perf_counter()
        await self.t.engine.run_mutation(
            path,
            {"name": LABELS[path]},
            self.user.identity,
            request=(str(self.user.session_id), next(self.requests)),
            client=CLIENT,
        )
        return time.perf_counter() - began


@asynccontextmanager
async def backend(database_url: str | None) -> AsyncIterator[TestBackend]:
    """PostgreSQL: a fresh schema. SQLite: a fresh file on disk (the tests' own live in memory)."""
    cheap = Passwords(time_cost=1, memory_cost=1024)
    if database_url is not None:
        async with TestBackend(database_url, app=basic_app(), passwords=cheap) as t:
            yield t
        return
    directory = Path(tempfile.mkdtemp(prefix="bench-sensitive-", dir=Path.cwd()))
    try:
        url = f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}"
        async with TestBackend(url, app=basic_app(), passwords=cheap, existing=True) as t:
            yield t
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def bench(database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    async with backend(database_url) as t:
        alice = await t.sign_up("alice@example.com", "correct horse battery")
        answer = await alice.mutation(
            "sensitive:verifyPassword",
            {
                "action": "thing.look",
                "resource": LABELS["protected:look"],
                "password": "correct horse battery",
            },
        )
        assert answer["ok"], answer
        t.clock.advance(minutes=1)
        caller = Caller(t, alice)
        for path in SIDES:  # warm: statements compiled, counters created
            for _ in range(10):
                await caller.call(path)
        ratios: dict[str, list[float]] = {path: [] for path in SIDES[1:]}
        per_call: dict[str, list[float]] = {path: [] for path in SIDES}
        for round_ in range(args.rounds):
            order = SIDES[round_ % 3 :] + SIDES[: round_ % 3]
            times: dict[str, list[float]] = {path: [] for path in SIDES}
            for _ in range(args.calls):
                for path in order:
                    times[path].append(await caller.call(path))
            for path in SIDES:
                per_call[path].append(statistics.median(times[path]))
            for path in SIDES[1:]:
                # each call against the baseline call beside it: a slow moment (a checkpoint,
                # another process) falls on one pair, and the median of the pairs ignores it
                pairs = zip(times[path], times["protected:unprotected"], strict=True)
                ratios[path].append(statistics.median(mine / base for mine, base in pairs))
            print(
                f"  round {round_ + 1}: "
                + ", ".join(f"{LABELS[p]} {per_call[p][-1] * 1000:.2f} ms" for p in SIDES),
                flush=True,
            )
        return {"per_call": per_call, "ratios": ratios}


def render(results: dict[str, dict[str, Any]]) -> str:
    header = ("database", "mutation", "ms per call", "ratio", "rounds", "goal", "")
    lines = [header]
    for database, result in results.items():
        for path in SIDES:
            ms = statistics.median(result["per_call"][path]) * 1000
            if path in GOALS:
                rounds = result["ratios"][path]
                ratio = statistics.median(rounds)
                goal = GOALS[path]
                lines.append(
                    (
                        database,
                        LABELS[path],
                        f"{ms:.2f}",
                        f"{ratio:.2f}",
                        f"{min(rounds):.2f}-{max(rounds):.2f}",
                        f"<= {goal}",
                        "met" if ratio <= goal else "missed",
                    )
                )
            else:
                lines.append((database, LABELS[path], f"{ms:.2f}", "1", "-", "-", "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rows = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    rows.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(rows)


async def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_sensitive", description=__doc__
    )
    parser.add_argument("--calls", type=int, default=200, help="calls per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be positive")
    print(f"command: python -m benchmarks.bench_sensitive {' '.join(sys.argv[1:])}".rstrip())
    print(f"python: {platform.python_implementation()} {platform.python_version()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    targets: dict[str, str | None] = {}
    if args.only in (None, "sqlite"):
        targets["sqlite (file)"] = None
    if args.only in (None, "postgres"):
        targets["postgres"] = args.postgres_url
    results = {}
    for name, url in targets.items():
        print(f"{name}: {args.rounds} rounds of {args.calls} calls per side", flush=True)
        results[name] = await bench(url, args)
    print()
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
