"""The password method: ``sensitive:verifyPassword``.

The account's own password, checked with argon2 off the event loop. Every check counts on the
failure records that password sign-in shares (``backend/auth/lockout.py``): a guess spent here
is a guess spent there, and while those lock this client out the password is not checked at
all. Offered to a user who has a password and is not at its hard stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from backend import audit
from backend.auth import devices
from backend.auth.lockout import Attempt, Lockout, RefusalCode
from backend.auth.proof import credential
from backend.auth.sessions import SessionInfo
from backend.errors import ErrorCode
from backend.ratelimit.limiter import TokenBucket
from backend.sensitive import attempts
from backend.sensitive.attempts import Answer
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService
from backend.transactions.transaction import SystemDatabase
from backend.udf.registry import RegisteredFunction
from backend.udf.steps import Proceed, Steps, mutation_in_steps
from backend.udf.system_context import SystemContext

NAME = "password"
LIMITS: dict[str, TokenBucket] = {
    # a handful of password checks per 15 minutes; failures also count on the account's
    # record shared with sign-in, whose lock grows (backend/auth/lockout.py)
    "sensitive.password.user": TokenBucket(5, timedelta(minutes=15)),
    "sensitive.password.ip": TokenBucket(20, timedelta(minutes=15)),
}


async def password_hash(db: SystemDatabase, user_id: str) -> str | None:
    """The account's password hash, or None for an account without a password."""
    account = await credential(db, user_id)
    return None if account is None else account.get("passwordHash")


async def _known_device(db: SystemDatabase, who: SessionInfo) -> str | None:
    """The device the session was signed in on, if the account knows it (else None)."""
    device_hash = who.session.get("deviceHash")
    if isinstance(device_hash, str) and await devices.is_known(db, who.user_id, device_hash):
        return device_hash
    return None


async def attempt_of(db: SystemDatabase, lockout: Lockout, who: SessionInfo) -> Attempt:
    """A step-up password check, as ``lockout.py`` counts it: on the account's record, and
    made by the device the session was signed in on (an unknown client without one)."""
    device_hash = await _known_device(db, who)
    known = (who.user_id, device_hash) if device_hash is not None else None
    return lockout.attempt(str(who.user["email"]), known)


async def admit_guess(
    system: SystemContext,
    who: SessionInfo,
    limits: Mapping[str, TokenBucket],
    fields: dict[str, Any],
) -> Attempt | Answer:
    """Admit one guess at a secret of the account (a password, an app's code, a backup code)
    on the failure record the password keeps (counted as a failure now: settle it with
    ``right_guess`` or ``wrong_guess``), spending ``limits`` first; or the refusal to answer,
    while that record locks this client out (``RATE_LIMITED``, or ``METHOD_NOT_AVAILABLE`` at
    its hard stop)."""
    db = system.db
    lockout = system.service(SensitiveService).lockout
    attempt = await attempt_of(db, lockout, who)
    locked = await lockout.check(db, attempt)
    if locked is None:
        refused = await attempts.spend(system, who, limits, fields)
        if refused is not None:
            return refused
        locked = await lockout.admit(db, attempt)
    if locked is None:
        return attempt
    await audit.record(db, audit.EventKind.RATE_LIMITED, outcome="locked", **fields)
    if locked.code is RefusalCode.PASSWORD_LOCKED:  # until the address is proven
        return attempts.refusal(ErrorCode.METHOD_NOT_AVAILABLE)
    return attempts.refusal(ErrorCode.RATE_LIMITED, retryAfterMs=locked.retry_after_ms)


async def right_guess(system: SystemContext, attempt: Attempt) -> None:
    """Settle a guess ``admit_guess`` admitted as right (``Lockout.settle``): it clears the
    client's failure record and the account's consecutive count. The caller goes on to its
    grant or its change; nothing is audited here."""
    await system.service(SensitiveService).lockout.settle(system.db, attempt, ok=True)


async def wrong_guess(
    system: SystemContext,
    attempt: Attempt,
    detail: str,
    fields: dict[str, Any],
    *,
    code: ErrorCode = ErrorCode.INVALID_CODE,
) -> Answer:
    """Settle a guess ``admit_guess`` admitted as wrong (``Lockout.settle``: it stays counted,
    a known device's on the account too), audit the failed check (``detail`` says why) and
    answer it ``code`` (``INVALID_CODE`` unless said otherwise)."""
    db = system.db
    await system.service(SensitiveService).lockout.settle(db, attempt, ok=False)
    return await attempts.failed(db, attempts.refusal(code), detail, fields)


@dataclass(frozen=True)
class _Admitted:
    step: attempts.StepUp
    stored: str
    attempt: Attempt


@mutation_in_steps
async def verifyPassword(
    steps: Steps, action: str, password: str, resource: str | None = None
) -> dict[str, Any]:
    """Check the account's password; mint a grant on success. ``INVALID_PASSWORD``,
    ``METHOD_NOT_AVAILABLE`` (no password, or its hard stop), ``RATE_LIMITED`` (with
    ``retryAfterMs``).

    In steps (``udf/steps.py``): spend an attempt (one transaction), run argon2 outside any
    transaction (it takes tens of milliseconds, and a transaction open that long would stall
    every writer on SQLite), then record the outcome (a second transaction). The attempt
    counts on the account's failure record that password sign-in shares
    (``backend/auth/lockout.py``): while that locks this client out, the password is not
    checked at all."""
    attempts.check_target(action, resource)
    service = steps.engine.services.get(SensitiveService)

    async def admit(system: SystemContext) -> Answer | Proceed[_Admitted]:
        step = await attempts.begin(system, action, resource, NAME)
        if not isinstance(step, attempts.StepUp):
            return step
        stored = await password_hash(system.db, step.who.user_id)
        if stored is None:
            return await attempts.failed(
                system.db,
                attempts.refusal(ErrorCode.METHOD_NOT_AVAILABLE),
                "no password",
                step.fields,
            )
        # Counted as a failure now, forgiven below if the password is right.
        attempt = await admit_guess(system, step.who, LIMITS, step.fields)
        if not isinstance(attempt, Attempt):
            return attempt
        return Proceed(_Admitted(step, stored, attempt))

    first = await steps.transaction(admit)
    if not isinstance(first, Proceed):
        return first
    admitted = first.state
    ok, rehash = await service.passwords.verify(admitted.stored, password)

    async def record(system: SystemContext) -> Answer:
        db, step = system.db, admitted.step
        account = await credential(db, step.who.user_id)
        # Still the account's password (a takeover may have dropped it while argon2 ran)?
        right = ok and account is not None and account.get("passwordHash") == admitted.stored
        if not right or account is None:
            return await wrong_guess(
                system,
                admitted.attempt,
                "wrong password",
                step.fields,
                code=ErrorCode.INVALID_PASSWORD,
            )
        await right_guess(system, admitted.attempt)
        if rehash is not None:
            await db.patch(account["_id"], {"passwordHash": rehash})
        return await attempts.grant(db, step)

    return await steps.transaction(record)


class PasswordMethod:
    """Offered to a user with a password, unless its hard stop holds this client."""

    name = NAME
    functions: Mapping[str, RegisteredFunction[Any, Any, Any]] = {
        "sensitive:verifyPassword": verifyPassword
    }

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool:
        db = system.db
        if await password_hash(db, who.user_id) is None:
            return False
        user = await db.get(who.user_id)
        if user is None:
            return False
        known = await _known_device(db, who) is not None
        lockout = system.service(SensitiveService).lockout
        return not await lockout.stopped(db, str(user["email"]), known)


METHOD = PasswordMethod()

__all__ = [
    "LIMITS",
    "METHOD",
    "admit_guess",
    "attempt_of",
    "password_hash",
    "right_guess",
    "verifyPassword",
    "wrong_guess",
]
