"""A protected mutation with a live grant against the same mutation unprotected.

    python -m benchmarks.bench_sensitive [--seconds 2] [--rounds 5]

Both run through the real engine on SQLite, alternating in rounds so noise hits both alike.
``thing.look`` is level 3 (the grant is checked, not spent); ``thing.poke`` is level 4 (each
call spends a grant: grants are minted beforehand, outside the measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from backend.auth.passwords import Passwords
from backend.sensitive.grants import mint_grant
from backend.testing import TestBackend, UserHandle
from tests.conftest import basic_app


async def _rate(user: UserHandle, path: str, seconds: float, name: str) -> float:
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await user.mutation(path, {"name": name})
        count += 1
    return count / (time.perf_counter() - start)


async def _spent_rate(t: TestBackend, user: UserHandle, seconds: float) -> float:
    """Level 4: a grant is minted before each call, outside the timed part."""
    timed = 0.0
    count = 0
    while timed < seconds:
        await _mint(t, user, "thing.poke", "poke")
        start = time.perf_counter()
        await user.mutation("protected:poke", {"name": "poke"})
        timed += time.perf_counter() - start
        count += 1
    return count / timed


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
            lifetime_ms=24 * 3600 * 1000,
        )

    await t.run(mint)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    flags = f"--seconds {args.seconds} --rounds {args.rounds}"
    print(f"command: python -m benchmarks.bench_sensitive {flags}")
    cheap = Passwords(time_cost=1, memory_cost=1024)
    async with TestBackend(app=basic_app(), passwords=cheap) as t:
        alice = await t.sign_up("alice@example.com", "correct horse battery")
        answer = await alice.mutation(
            "sensitive:verifyPassword",
            {"action": "thing.look", "resource": "look", "password": "correct horse battery"},
        )
        assert answer["ok"]
        t.clock.advance(minutes=1)
        plain: list[float] = []
        level3: list[float] = []
        level4: list[float] = []
        for _ in range(args.rounds):
            plain.append(await _rate(alice, "protected:unprotected", args.seconds, "plain"))
            level3.append(await _rate(alice, "protected:look", args.seconds, "look"))
            level4.append(await _spent_rate(t, alice, args.seconds))
    p, l3, l4 = (statistics.median(x) for x in (plain, level3, level4))
    print("mutations per second (median of rounds), SQLite")
    print(f"  unprotected                      {p:8.1f}")
    print(f"  protected, level 3 (live grant)  {l3:8.1f}   cost x{p / l3:.2f}")
    print(f"  protected, level 4 (grant spent) {l4:8.1f}   cost x{p / l4:.2f}")
    print("  goal: protected within 1.3x of unprotected")


if __name__ == "__main__":
    asyncio.run(main())
