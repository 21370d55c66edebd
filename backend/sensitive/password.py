"""The password method: ``sensitive:verifyPassword``.

The account's own password, checked with argon2 off the event loop. Every check counts on the
failure records that password sign-in shares (``backend/auth/lockout.py``): a guess spent here
is a guess spent there, and while those lock this client out the password is not checked at
all. Offered to a user who has a password and is not at its hard stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from backend import audit
from backend.auth import devices
from backend.auth.lockout import Attempt, Lockout, RefusalCode
from backend.auth.proof import credential
from backend.auth.sessions import SessionInfo
from backend.engine import Engine, MutationResult
from backend.errors import ErrorCode
from backend.ratelimit.limiter import TokenBucket
from backend.sensitive import attempts
from backend.sensitive.attempts import Answer
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService, caller
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.context import ClientInfo, Identity, MutationCtx
from backend.udf.registry import RegisteredFunction, mutation
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
    on the failure record the password keeps (counted as a failure now: ``settle`` it with
    the outcome), spending ``limits`` first; or the refusal to answer, while that record
    locks this client out (``RATE_LIMITED``, or ``METHOD_NOT_AVAILABLE`` at its hard stop)."""
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


@mutation
async def verifyPassword(
    ctx: MutationCtx, action: str, password: str, resource: str | None = None
) -> dict[str, Any]:
    """Check the account's password; mint a grant on success. ``INVALID_PASSWORD``,
    ``METHOD_NOT_AVAILABLE`` (no password, or its hard stop), ``RATE_LIMITED`` (with
    ``retryAfterMs``). Runs in three steps (see ``run_verify_password``): this body is never
    called directly by the engine."""
    raise RuntimeError("sensitive:verifyPassword runs through its own runner")


_PROCEED = "proceed"


async def run_verify_password(
    engine: Engine,
    args: dict[str, Any],
    identity: Identity | None,
    *,
    request: tuple[str, int] | None,
    client: ClientInfo | None,
) -> MutationResult:
    """Spend an attempt (one transaction), run argon2 off the loop (none: it takes tens of
    milliseconds, and a transaction open that long would stall every writer on SQLite), then
    record the outcome (a second transaction). The attempt counts on the account's failure
    record that password sign-in shares (``backend/auth/lockout.py``): while that locks this
    client out, the password is not checked at all."""
    action, resource, password = args["action"], args.get("resource"), args["password"]
    attempts.check_target(action, resource)
    service = engine.services.get(SensitiveService)
    spec = service.registry.get(action)
    state: dict[str, Any] = {}

    async def admit(txn: Transaction) -> Any:
        system = engine.system_context(SystemDatabase(txn), identity=identity)
        who = await caller(system)
        await attempts.authorize(system, who, spec, resource, NAME)
        fields = attempts.trail(system, who, spec, resource, NAME)
        db = system.db
        not_offered = await attempts.offered(system, who, spec, resource, NAME, fields)
        if not_offered is not None:
            return not_offered
        stored = await password_hash(db, who.user_id)
        if stored is None:
            return await attempts.failed(
                db, attempts.refusal(ErrorCode.METHOD_NOT_AVAILABLE), "no password", fields
            )
        attempt = await attempt_of(db, service.lockout, who)
        locked = await service.lockout.check(db, attempt)
        if locked is None:
            refused = await attempts.spend(system, who, LIMITS, fields)
            if refused is not None:
                return refused
            # Counted as a failure now, forgiven below if the password is right.
            locked = await service.lockout.admit(db, attempt)
        if locked is not None:
            await audit.record(db, audit.EventKind.RATE_LIMITED, outcome="locked", **fields)
            if locked.code is RefusalCode.PASSWORD_LOCKED:  # until the address is proven
                return attempts.refusal(ErrorCode.METHOD_NOT_AVAILABLE)
            return attempts.refusal(ErrorCode.RATE_LIMITED, retryAfterMs=locked.retry_after_ms)
        state.update(who=who, fields=fields, stored=stored, attempt=attempt)
        return _PROCEED

    first = await engine.write(
        admit,
        function_path="sensitive:verifyPassword",
        request=request,
        client=client,
        remember=lambda value: value != _PROCEED,
    )
    if first.value != _PROCEED:
        return first
    ok, rehash = await service.passwords.verify(state["stored"], password)
    who: SessionInfo = state["who"]
    fields: dict[str, Any] = state["fields"]
    attempt: Attempt = state["attempt"]

    async def record(txn: Transaction) -> Answer:
        db = SystemDatabase(txn)
        account = await credential(db, who.user_id)
        # Still the account's password (a takeover may have dropped it while argon2 ran)?
        right = ok and account is not None and account.get("passwordHash") == state["stored"]
        await service.lockout.settle(db, attempt, ok=right)
        if right and account is not None:
            if rehash is not None:
                await db.patch(account["_id"], {"passwordHash": rehash})
            return await attempts.grant(db, who, spec, resource, NAME, fields)
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.INVALID_PASSWORD), "wrong password", fields
        )

    return await engine.write(
        record, function_path="sensitive:verifyPassword", request=request, client=client
    )


verifyPassword.runner = run_verify_password  # type: ignore[attr-defined]


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
    "run_verify_password",
    "verifyPassword",
]
