"""Rate limits kept in the database and spent inside the caller's own transaction.

A limit is a named configuration (a ``TokenBucket`` or a ``FixedWindow``) applied per key (the
caller's user id, a hashed IP address, ...). Its state is one document per (name, key) in the
system table ``_rate_limits``; ``limit`` reads that document and, when the request fits, writes
the new state through the caller's ``Transaction``. Living in the transaction buys three things
without any machinery of its own:

- **atomic**: tokens are spent only if the caller's mutation commits. A mutation that takes a
  token and then fails gives the token back with the rest of its writes.
- **serializable**: two concurrent callers read the same state document, so the store makes one
  of them re-run against the other's result (PostgreSQL ``SERIALIZABLE``, SQLite's single
  writer). Concurrent callers never spend more than there is.
- **no background work**: nothing refills buckets on a timer. State is brought up to date from
  the elapsed time when it is next read, using ``txn.now`` (the engine's injected clock, frozen
  for the whole transaction), so tests move time with a fake clock.

The arithmetic is exact: times are whole microseconds and token counts are ``Fraction``s, so
``retry_after_ms`` is the smallest whole number of milliseconds after which the same request
succeeds (waiting one millisecond less still fails). A refusal writes nothing, so the state the
answer was computed from is the state the retry will find (unless someone else spends first).

Keys are stored as given. Callers must not pass personal data in the clear: hash an email
address or an IP address (with a server-side secret) before using it as a key.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.schema_definition import TableDef, table
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import MutationCtx, QueryCtx
from backend.udf.system_context import SystemContext

TABLE = "_rate_limits"
MAX_KEY_LENGTH = 256
MAX_NAME_LENGTH = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class RateLimitState(BaseModel):
    """One (limit name, key)'s state.

    Token bucket: ``value`` is the tokens left at ``ts`` (ms since the epoch).
    Fixed window: ``value`` is the count used in the window that starts at ``windowStart`` (ms);
    with reservations it may exceed the rate, and the excess is owed by the following windows.
    ``kind`` lets a limit whose configuration changed kind start afresh instead of misreading.
    """

    name: str
    key: str
    kind: Literal["tokenBucket", "fixedWindow"]
    value: float
    ts: float | None = None
    windowStart: float | None = None


TABLES: dict[str, TableDef] = {
    TABLE: table(RateLimitState).index("by_name_key", "name", "key"),
}


def _positive_int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{what} must be a positive int, not {value!r}")
    return value


def _positive_period(period: Any) -> timedelta:
    if not isinstance(period, timedelta) or period < _MICROSECOND:
        raise TypeError(f"period must be a positive timedelta, not {period!r}")
    return period


@dataclass(frozen=True)
class TokenBucket:
    """Refills ``rate`` tokens per ``period``, continuously, up to ``capacity`` (default
    ``rate``). A full bucket allows a burst of ``capacity`` requests, then one every
    ``period / rate``. Raises ``TypeError`` for a non-positive rate, period or capacity."""

    rate: int
    period: timedelta
    capacity: int | None = None

    def __post_init__(self) -> None:
        _positive_int(self.rate, "rate")
        _positive_period(self.period)
        if self.capacity is not None:
            _positive_int(self.capacity, "capacity")

    @property
    def max(self) -> int:
        """The most a single request can ever take."""
        return self.capacity if self.capacity is not None else self.rate


@dataclass(frozen=True)
class FixedWindow:
    """Allows ``rate`` per window of length ``period``; windows are aligned to ``start`` (a
    timezone-aware datetime) or to the epoch, so every key's window turns over at the same
    instants. Raises ``TypeError`` for a non-positive rate or period or a naive ``start``."""

    rate: int
    period: timedelta
    start: datetime | None = None

    def __post_init__(self) -> None:
        _positive_int(self.rate, "rate")
        _positive_period(self.period)
        if self.start is not None and (
            not isinstance(self.start, datetime) or self.start.utcoffset() is None
        ):
            raise TypeError(f"start must be a timezone-aware datetime, not {self.start!r}")

    @property
    def max(self) -> int:
        """The most a single request can ever take."""
        return self.rate


RateLimitConfig = TokenBucket | FixedWindow


@dataclass(frozen=True)
class RateLimitResult:
    """``ok``: the request fits (and, from ``limit``, was spent).

    ``retry_after_ms``: when refused, the wait after which the same request would succeed;
    when a reservation was granted, the wait until the reserved capacity exists (run the
    reserved work then); ``None`` when the request fits now, or can never fit (``count`` above
    the limit's capacity).
    """

    ok: bool
    retry_after_ms: int | None = None


# ---- the pure core: state in, answer and new state out --------------------------------------

Fields = dict[str, Any]


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // _MICROSECOND


def _ms(micros: int) -> Fraction:
    return Fraction(micros, 1000)


def _ceil_ms(ms: Fraction) -> int:
    return math.ceil(ms)


def _stored_tokens(value: float, period_us: int) -> Fraction:
    """The exact token count a stored float stands for.

    Counts start whole and change only by whole requests and by ``rate / period_us`` per
    elapsed microsecond, so every count is a multiple of ``1 / period_us``. The float in the
    document is within a rounding error of one such multiple; snapping back to it makes a
    burst of requests in one instant find exactly the tokens that are left, instead of a hair
    less after a few rounded round trips.
    """
    return Fraction(round(Fraction(value) * period_us), period_us)


def _token_bucket(
    config: TokenBucket, state: Fields | None, now_us: int, count: int, reserve: bool
) -> tuple[RateLimitResult, Fields | None]:
    period_us = config.period // _MICROSECOND
    period_ms = _ms(period_us)
    now_ms = _ms(now_us)
    if state is None:
        tokens, last = Fraction(config.max), now_ms
    else:
        last = Fraction(state["ts"])
        # A clock that stepped back (another server's, or a corrected one) refills nothing.
        elapsed = max(Fraction(0), now_ms - last)
        tokens = min(
            Fraction(config.max),
            _stored_tokens(state["value"], period_us) + elapsed * config.rate / period_ms,
        )
        last = max(last, now_ms)
    remaining = tokens - count
    # Stored as the same refill line anchored at a whole millisecond (exact as a float), so
    # the stored time loses nothing; the token count is snapped back when read.
    anchor = math.floor(last)
    at_anchor = remaining - (last - anchor) * config.rate / period_ms
    fields: Fields = {"kind": "tokenBucket", "value": float(at_anchor), "ts": float(anchor)}
    if remaining >= 0:
        return RateLimitResult(True), fields
    # Time until the deficit refills; the capacity clamp cannot bite before then because
    # count <= capacity.
    wait = _ceil_ms(-remaining * period_ms / config.rate)
    if reserve:
        # The bucket goes negative: later callers wait behind this reservation.
        return RateLimitResult(True, wait), fields
    return RateLimitResult(False, wait), None


def _fixed_window(
    config: FixedWindow, state: Fields | None, now_us: int, count: int, reserve: bool
) -> tuple[RateLimitResult, Fields | None]:
    period = config.period // _MICROSECOND
    origin = _micros(config.start) if config.start is not None else 0
    window = origin + (now_us - origin) // period * period
    used = 0
    if state is not None:
        stored = round(Fraction(state["windowStart"]) * 1000)
        # Each window that has begun since pays ``rate`` off what was used (or reserved);
        # without reservations ``used <= rate``, so any new window starts from zero.
        # A clock that stepped back behind the stored window starts no new window.
        passed = max(0, (window - stored) // period)
        used = max(0, int(state["value"]) - config.rate * passed)
    total = used + count
    fields: Fields = {
        "kind": "fixedWindow",
        "value": float(total),
        "windowStart": float(_ms(window)),
    }
    if total <= config.rate:
        return RateLimitResult(True), fields
    # The first window in which what is owed has fallen to rate - count; without reservations
    # that is always the next one.
    windows_ahead = -(-(total - config.rate) // config.rate)
    wait = _ceil_ms(_ms(window + windows_ahead * period - now_us))
    if reserve:
        return RateLimitResult(True, wait), fields
    return RateLimitResult(False, wait), None


def evaluate(
    config: RateLimitConfig,
    state: Mapping[str, Any] | None,
    now: datetime,
    *,
    count: int = 1,
    reserve: bool = False,
) -> tuple[RateLimitResult, Fields | None]:
    """The answer to a request against ``state`` at ``now``, and the state to store if it is
    spent (``None``: store nothing). Pure: no database, no clock. ``state`` of another kind
    than ``config`` (the configuration changed) counts as no state."""
    if count > config.max:
        return RateLimitResult(False, None), None
    now_us = _micros(now)
    if isinstance(config, TokenBucket):
        fresh = dict(state) if state is not None and state.get("kind") == "tokenBucket" else None
        return _token_bucket(config, fresh, now_us, count, reserve)
    fresh = dict(state) if state is not None and state.get("kind") == "fixedWindow" else None
    return _fixed_window(config, fresh, now_us, count, reserve)


# ---- the transactional API ------------------------------------------------------------------


def _check_request(name: Any, key: Any, count: Any = 1) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise invalid_argument(
            f"a rate limit name must be a non-empty string of at most {MAX_NAME_LENGTH} chars",
            "name",
        )
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
        raise invalid_argument(
            f"a rate limit key must be a string of at most {MAX_KEY_LENGTH} chars", "key"
        )
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise invalid_argument("count must be a positive integer", "count")


def _check_config(config: Any) -> RateLimitConfig:
    if not isinstance(config, TokenBucket | FixedWindow):
        raise TypeError(f"expected a TokenBucket or a FixedWindow, not {config!r}")
    return config


async def _find(db: SystemDatabase, name: str, key: str) -> Fields | None:
    # One document per (name, key): the serializable transaction that inserts it is the only
    # one that can have seen it missing, so ``first`` never hides a twin.
    return await (
        db.query(TABLE)
        .with_index("by_name_key", lambda q: q.eq("name", name).eq("key", key))
        .first()
    )


async def limit(
    db: SystemDatabase,
    name: str,
    config: RateLimitConfig,
    *,
    key: str = "",
    count: int = 1,
    reserve: bool = False,
) -> RateLimitResult:
    """Spend ``count`` from the limit ``name`` for ``key`` in ``db``'s transaction, at its
    frozen time.

    When the result is not ok nothing is spent. With ``reserve=True`` a request that does not
    fit now is granted anyway against future capacity (``ok`` with the wait in
    ``retry_after_ms``); later callers wait behind it. A ``count`` above the capacity can never
    fit: ``ok=False, retry_after_ms=None``.

    Raises ``INVALID_ARGUMENT`` for a bad name, a key longer than 256 characters or a
    non-positive count, ``TypeError`` for a config that is neither kind or for a read-only
    transaction (a query cannot spend).
    """
    _check_request(name, key, count)
    config = _check_config(config)
    if not db.txn.limits.rate_limits:  # off in tests; a request that can never fit still fails
        return RateLimitResult(count <= config.max)
    current = await _find(db, name, key)
    result, fields = evaluate(config, current, db.txn.now, count=count, reserve=reserve)
    if fields is not None:
        document = {"name": name, "key": key, **fields}
        if current is None:
            await db.insert(TABLE, document)
        else:
            await db.replace(current["_id"], document)
    return result


async def check(
    db: SystemDatabase,
    name: str,
    config: RateLimitConfig,
    *,
    key: str = "",
    count: int = 1,
    reserve: bool = False,
) -> RateLimitResult:
    """What ``limit`` would answer now, without spending anything (works in a query too).
    Raises as ``limit`` does."""
    _check_request(name, key, count)
    config = _check_config(config)
    if not db.txn.limits.rate_limits:  # off in tests; a request that can never fit still fails
        return RateLimitResult(count <= config.max)
    current = await _find(db, name, key)
    return evaluate(config, current, db.txn.now, count=count, reserve=reserve)[0]


async def spend_all(
    db: SystemDatabase, requests: Sequence[tuple[str, RateLimitConfig, str]]
) -> int | None:
    """Spend one from each ``(name, config, key)``, or, if any of them refuses, from none:
    then the longest of their waits, in milliseconds (None: all spent). For a request that
    several limits guard at once (per user and per address, say)."""
    waits = []
    for name, config, key in requests:
        result = await check(db, name, config, key=key)
        if not result.ok:
            waits.append(result.retry_after_ms or 0)
    if waits:
        return max(waits)
    for name, config, key in requests:
        await limit(db, name, config, key=key)
    return None


async def reset(db: SystemDatabase, name: str, *, key: str = "") -> None:
    """Forget the state of ``name`` for ``key``: the next request sees a fresh limit.
    Raises ``INVALID_ARGUMENT`` for a bad name or key."""
    _check_request(name, key)
    current = await _find(db, name, key)
    if current is not None:
        await db.delete(current["_id"])


class RateLimiter:
    """Named limits for app functions, declared once at module level:

    ```python
    limiter = RateLimiter({
        "sendMessage": TokenBucket(10, timedelta(minutes=1)),
        "signUp": FixedWindow(100, timedelta(hours=1)),
    })

    @mutation
    async def send(ctx: MutationCtx, body: str) -> None:
        user = await ctx.auth.require_identity()
        await limiter.limit(ctx, "sendMessage", key=user.subject)
        ...
    ```

    The state lives in an engine table that ``ctx.db`` cannot reach; the limiter goes through
    the mutation's transaction, so the tokens are spent exactly when the mutation commits.
    Raises ``TypeError`` at declaration for a config that is neither kind or a bad name.
    """

    def __init__(self, limits: Mapping[str, RateLimitConfig]) -> None:
        self._limits: dict[str, RateLimitConfig] = {}
        for name, config in limits.items():
            if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
                raise TypeError(f"a rate limit name must be a short non-empty string: {name!r}")
            self._limits[name] = _check_config(config)

    def config(self, name: str) -> RateLimitConfig:
        """The configuration of ``name``. Raises ``TypeError`` for a name not declared."""
        found = self._limits.get(name)
        if found is None:
            raise TypeError(f"unknown rate limit {name!r}; expected one of {sorted(self._limits)}")
        return found

    def _answer(self, name: str, result: RateLimitResult, count: int, throws: bool) -> None:
        if result.ok:
            return
        if result.retry_after_ms is None:
            raise invalid_argument(
                f"rate limit {name!r} allows at most {self.config(name).max} at once; "
                f"{count} can never fit",
                "count",
            )
        if throws:
            seconds = math.ceil(result.retry_after_ms / 1000)
            raise ConvexError(
                ErrorCode.RATE_LIMITED,
                f"Too many requests; try again in {seconds} s",
                retryAfterMs=result.retry_after_ms,
                limit=name,
            )

    async def limit(
        self,
        ctx: MutationCtx,
        name: str,
        *,
        key: str = "",
        count: int = 1,
        reserve: bool = False,
        throws: bool = True,
    ) -> RateLimitResult:
        """Spend ``count`` from ``name`` for ``key``, in the mutation's transaction.

        Raises ``RATE_LIMITED`` (with ``retryAfterMs`` and ``limit`` in its data) when over,
        unless ``throws=False``, which returns the refusal instead. Raises
        ``INVALID_ARGUMENT`` when ``count`` exceeds the capacity (it could never succeed) or
        the key is longer than 256 characters, ``TypeError`` for an undeclared name.
        """
        return await self._apply(limit, ctx, name, key, count, reserve, throws)

    async def check(
        self,
        ctx: QueryCtx,
        name: str,
        *,
        key: str = "",
        count: int = 1,
        reserve: bool = False,
        throws: bool = True,
    ) -> RateLimitResult:
        """What ``limit`` would do, spending nothing; usable in queries. Raises as ``limit``."""
        return await self._apply(check, ctx, name, key, count, reserve, throws)

    async def _apply(
        self,
        request: Callable[..., Awaitable[RateLimitResult]],
        ctx: QueryCtx,
        name: str,
        key: str,
        count: int,
        reserve: bool,
        throws: bool,
    ) -> RateLimitResult:
        config = self.config(name)
        db = SystemContext.of(ctx).db
        result = await request(db, name, config, key=key, count=count, reserve=reserve)
        self._answer(name, result, count, throws)
        return result

    async def reset(self, ctx: MutationCtx, name: str, *, key: str = "") -> None:
        """Give ``key`` a fresh ``name`` limit (e.g. after a successful sign-in). Raises
        ``TypeError`` for an undeclared name, ``INVALID_ARGUMENT`` for a bad key."""
        self.config(name)
        await reset(SystemContext.of(ctx).db, name, key=key)


__all__ = [
    "TABLES",
    "FixedWindow",
    "RateLimitConfig",
    "RateLimitResult",
    "RateLimitState",
    "RateLimiter",
    "TokenBucket",
    "check",
    "evaluate",
    "limit",
    "reset",
    "spend_all",
]
