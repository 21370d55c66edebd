"""Rate limits: exact waits, nothing spent on refusal or rollback, no over-spending under races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.ratelimit import limiter
from backend.ratelimit.limiter import (
    FixedWindow,
    RateLimitConfig,
    RateLimiter,
    RateLimitResult,
    TokenBucket,
)
from backend.testing import RunCtx, TestBackend
from tests.conftest import basic_app

BUCKET = TokenBucket(5, timedelta(minutes=1))  # one token every 12 s
WINDOW = FixedWindow(3, timedelta(hours=1))


def _limit(
    t: TestBackend,
    config: RateLimitConfig = BUCKET,
    *,
    name: str = "api",
    key: str = "user-1",
    count: int = 1,
    reserve: bool = False,
) -> Any:
    return t.run(
        lambda ctx: limiter.limit(ctx.db, name, config, key=key, count=count, reserve=reserve)
    )


def _check(
    t: TestBackend, config: RateLimitConfig = BUCKET, *, key: str = "user-1", count: int = 1
) -> Any:
    return t.run(lambda ctx: limiter.check(ctx.db, "api", config, key=key, count=count))


async def _states(t: TestBackend) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.query("_rate_limits").collect())


async def test_a_bucket_allows_its_capacity_then_an_exact_wait(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        for _ in range(5):
            assert await _limit(t) == RateLimitResult(True)
        refused = await _limit(t)
        assert refused == RateLimitResult(False, 12_000)
        t.clock.advance(milliseconds=11_999)
        assert await _limit(t) == RateLimitResult(False, 1)
        t.clock.advance(milliseconds=1)
        assert await _limit(t) == RateLimitResult(True)
        assert (await _limit(t)).ok is False


async def test_the_wait_is_exact_for_awkward_rates(database_url: str | None) -> None:
    # 3 tokens per 10 s: a token every 3333.33 ms, so the waits do not fall on whole ms.
    config = TokenBucket(3, timedelta(seconds=10), capacity=4)
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        t.clock.advance(microseconds=123)  # and the clock is off the millisecond grid
        for _ in range(4):
            assert (await _limit(t, config)).ok
        for count in (1, 2, 1, 3):
            refused = await _limit(t, config, count=count)
            assert not refused.ok
            assert refused.retry_after_ms is not None
            t.clock.advance(milliseconds=refused.retry_after_ms - 1)
            assert not (await _check(t, config, count=count)).ok
            t.clock.advance(milliseconds=1)
            assert await _limit(t, config, count=count) == RateLimitResult(True)


async def test_a_bucket_refills_continuously_up_to_its_capacity(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert (await _limit(t, count=5)).ok
        t.clock.advance(seconds=24)
        assert (await _limit(t, count=2)).ok
        assert not (await _limit(t)).ok
        t.clock.advance(hours=5)  # far more than a full bucket's worth
        assert (await _limit(t, count=5)).ok
        assert not (await _limit(t)).ok


async def test_a_fixed_window_resets_at_its_boundary(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        t.clock.advance(minutes=20)  # 00:20 in an hourly window aligned to the epoch
        for _ in range(3):
            assert (await _limit(t, WINDOW)).ok
        assert await _limit(t, WINDOW) == RateLimitResult(False, 40 * 60_000)
        t.clock.advance(minutes=40, milliseconds=-1)
        assert await _limit(t, WINDOW) == RateLimitResult(False, 1)
        t.clock.advance(milliseconds=1)
        for _ in range(3):
            assert (await _limit(t, WINDOW)).ok
        assert not (await _limit(t, WINDOW)).ok


async def test_a_fixed_window_aligns_to_its_start(database_url: str | None) -> None:
    start = datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC)  # the fake clock starts 30 s later
    config = FixedWindow(1, timedelta(minutes=1), start=start)
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert (await _limit(t, config)).ok
        assert await _limit(t, config) == RateLimitResult(False, 30_000)


async def test_check_spends_nothing(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        for _ in range(10):
            assert await _check(t) == RateLimitResult(True)
        assert await _states(t) == []
        assert (await _limit(t, count=5)).ok
        assert await _check(t) == RateLimitResult(False, 12_000)
        assert await _check(t, WINDOW) == RateLimitResult(True)  # another kind starts afresh


async def test_reset_gives_a_fresh_limit(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert (await _limit(t, count=5)).ok
        assert (await _limit(t, key="other", count=5)).ok
        await t.run(lambda ctx: limiter.reset(ctx.db, "api", key="user-1"))
        assert (await _limit(t, count=5)).ok
        assert not (await _limit(t, key="other")).ok
        await t.run(lambda ctx: limiter.reset(ctx.db, "never-used", key="x"))


async def test_a_refusal_spends_nothing(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert (await _limit(t, count=3)).ok
        before = await _states(t)
        assert await _limit(t, count=3) == RateLimitResult(False, 12_000)
        assert await _states(t) == before
        assert (await _limit(t, count=2)).ok  # the 2 left are still there


async def test_a_rolled_back_transaction_spends_nothing(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:

        async def spend_then_fail(ctx: RunCtx) -> None:
            assert (await limiter.limit(ctx.db, "api", BUCKET, key="user-1", count=5)).ok
            raise ConvexError("NOPE", "rolled back")

        with pytest.raises(ConvexError):
            await t.run(spend_then_fail)
        assert await _states(t) == []
        assert (await _limit(t, count=5)).ok


async def test_concurrent_callers_never_overspend(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        results = await asyncio.gather(*(_limit(t) for _ in range(20)))
        assert sum(result.ok for result in results) == 5
        (state,) = await _states(t)
        assert state["value"] == 0


async def test_keys_and_names_are_isolated(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert (await _limit(t, key="alice", count=5)).ok
        assert not (await _limit(t, key="alice")).ok
        assert (await _limit(t, key="bob")).ok
        assert (await _limit(t, key="alice", name="other")).ok
        assert (await _limit(t, key="")).ok


async def test_a_reservation_is_granted_and_queues_later_callers(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert (await _limit(t, count=5)).ok
        assert await _limit(t, count=2, reserve=True) == RateLimitResult(True, 24_000)
        assert await _limit(t) == RateLimitResult(False, 36_000)
        assert (await _limit(t, WINDOW, count=3)).ok
        assert await _limit(t, WINDOW, count=3, reserve=True) == RateLimitResult(True, 3_600_000)
        assert await _limit(t, WINDOW) == RateLimitResult(False, 7_200_000)


async def test_bad_requests(database_url: str | None) -> None:
    async with TestBackend(database_url, app=basic_app(), rate_limits=True) as t:
        assert await _limit(t, count=6) == RateLimitResult(False, None)
        assert await _limit(t, WINDOW, count=4) == RateLimitResult(False, None)
        assert await _limit(t, key="k" * 256) == RateLimitResult(True)
        for bad in ({"key": "k" * 257}, {"count": 0}, {"name": ""}):
            with pytest.raises(ConvexError) as info:
                await _limit(t, **bad)
            assert info.value.code == "INVALID_ARGUMENT"


def test_configs_refuse_nonsense() -> None:
    with pytest.raises(TypeError, match="rate"):
        TokenBucket(0, timedelta(minutes=1))
    with pytest.raises(TypeError, match="period"):
        FixedWindow(1, timedelta(0))
    with pytest.raises(TypeError, match="capacity"):
        TokenBucket(1, timedelta(minutes=1), capacity=0)
    with pytest.raises(TypeError, match="timezone-aware"):
        FixedWindow(1, timedelta(minutes=1), start=datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="TokenBucket or a FixedWindow"):
        RateLimiter({"x": object()})  # type: ignore[dict-item]


# ---- RateLimiter, from app functions (tests/apps/basic/functions/limited.py) ------------------


@pytest.mark.rate_limits
async def test_the_limiter_raises_rate_limited_with_the_wait(basic: TestBackend) -> None:
    await basic.mutation("limited:send", {"key": "u1"})
    await basic.mutation("limited:send", {"key": "u1"})
    with pytest.raises(ConvexError) as info:
        await basic.mutation("limited:send", {"key": "u1"})
    assert info.value.code == "RATE_LIMITED"
    assert info.value.data["retryAfterMs"] == 30_000
    assert info.value.data["limit"] == "send"
    assert await basic.mutation("limited:try_send", {"key": "u1"}) == {
        "ok": False,
        "retryAfterMs": 30_000,
    }
    assert await basic.query("limited:can_send", {"key": "u1"}) is False
    assert await basic.query("limited:can_send", {"key": "u2"}) is True
    basic.clock.advance(seconds=30)
    assert await basic.query("limited:can_send", {"key": "u1"}) is True
    await basic.mutation("limited:send", {"key": "u1"})


@pytest.mark.rate_limits
async def test_the_limiter_spends_only_when_the_mutation_commits(basic: TestBackend) -> None:
    for _ in range(3):
        with pytest.raises(ConvexError) as info:
            await basic.mutation("limited:send_then_fail", {"key": "u1"})
        assert info.value.code == "NOPE"
    await basic.mutation("limited:send", {"key": "u1", "count": 2})


@pytest.mark.rate_limits
async def test_the_limiter_refuses_a_count_that_can_never_fit(basic: TestBackend) -> None:
    with pytest.raises(ConvexError) as info:
        await basic.mutation("limited:send", {"key": "u1", "count": 3})
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.data["path"] == "count"


async def test_an_unknown_limit_is_a_developer_error(basic: TestBackend) -> None:
    from tests.apps.basic.functions.limited import limiter as app_limiter

    async def use_unknown(ctx: RunCtx) -> None:
        await app_limiter.limit(ctx, "nope")

    with pytest.raises(TypeError, match=r"expected one of \['daily', 'send'\]"):
        await basic.run(use_unknown)
    with pytest.raises(Exception, match="TypeError: unknown rate limit 'nope'"):
        await basic.mutation("limited:unknown", {})


async def test_app_code_cannot_reach_the_state_through_ctx_db(basic: TestBackend) -> None:
    await basic.mutation("limited:send", {"key": "u1"})
    with pytest.raises(ConvexError) as info:
        await basic.mutation("limited:peek", {})
    assert info.value.code == "INVALID_ARGUMENT"
