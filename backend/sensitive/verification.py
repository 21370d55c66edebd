"""The verification functions: ``sensitive:verifyPassword``, ``sensitive:sendEmailCode``,
``sensitive:verifyEmailCode`` (mutations) and ``sensitive:status`` (a query).

They answer ``{ok: true, ...}`` or ``{ok: false, code, ...}`` instead of throwing for a wrong
password or code, so that the failed attempt (its count, its audit event, the rate limit it
spent) commits. Bad arguments and a missing session still throw, and so does ``FORBIDDEN``:
before anything else, each function runs the action's own permission rule
(``SensitiveAction.authorize``) for the caller and the resource, so that nobody is mailed,
described or granted anything about a resource they may not act on.

Every abuse-prone step is rate limited per user and per client address, and the limits are
spent *before* the check they guard, in a transaction of their own where the check itself is
slow (argon2): twenty parallel guesses get five answers, not twenty.
"""

from __future__ import annotations

import hmac
import re
from datetime import timedelta
from typing import Any

from backend import audit
from backend.auth.lockout import Attempt, RefusalCode
from backend.auth.proof import credential
from backend.engine import Engine, MutationResult
from backend.errors import ConvexError, ErrorCode
from backend.mail import SECRET, Mail, queue_mail
from backend.ratelimit.limiter import TokenBucket, check, limit
from backend.sensitive.grants import (
    CODES,
    FAILURES,
    current_code,
    failures,
    live_grant,
    mint_grant,
)
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import (
    Caller,
    SensitiveService,
    caller,
    methods_for,
    password_hash,
)
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.context import ClientInfo, Identity, MutationCtx, QueryCtx
from backend.udf.registry import mutation, query
from backend.udf.system_context import SystemContext

CODE_TTL = timedelta(minutes=10)
MAX_CODE_FAILURES = 5
FAILURES_REMEMBERED = timedelta(hours=1)
# The account's hard stop for email codes: this many wrong codes in a row (across codes,
# actions and sessions) and every session signed in before the last of them loses the email
# method for good; signing in again (a stronger proof than a code) starts afresh. A guesser
# holding a stolen session therefore makes at most this many guesses at one-in-a-million
# codes: a chance of 2e-5 (BENCHMARKS.md), where rate limits alone allowed 5 an hour forever.
EMAIL_CODE_HARD_STOP = 20
VERIFICATION_LOCKED = ErrorCode.VERIFICATION_LOCKED.value
_CODE = re.compile(r"\d{6}")

LIMITS: dict[str, TokenBucket] = {
    # a cooldown of a minute between code mails, and a few an hour
    "sensitive.code.send.cooldown": TokenBucket(1, timedelta(minutes=1)),
    "sensitive.code.send.user": TokenBucket(5, timedelta(hours=1)),
    "sensitive.code.send.ip": TokenBucket(20, timedelta(hours=1)),
    "sensitive.code.check.user": TokenBucket(10, timedelta(minutes=15)),
    "sensitive.code.check.ip": TokenBucket(30, timedelta(minutes=15)),
    # a handful of password checks per 15 minutes; failures also count on the account's
    # record shared with sign-in, whose lock grows (backend/auth/lockout.py)
    "sensitive.password.user": TokenBucket(5, timedelta(minutes=15)),
    "sensitive.password.ip": TokenBucket(20, timedelta(minutes=15)),
}


def _check_target(action: Any, resource: Any) -> None:
    if not isinstance(action, str) or not action or len(action) > 128:
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT, "action must be an action name", path="action"
        )
    if resource is not None and (not isinstance(resource, str) or len(resource) > 256):
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "resource must be an id", path="resource")


def _trail(
    system: SystemContext, who: Caller, spec: SensitiveAction, resource: str | None, method: str
) -> dict[str, Any]:
    return {
        "userId": who.user_id,
        "sessionId": who.session_id,
        "ipAddress": system.client.ip_address if system.client else None,
        "action": spec.name,
        "resource": resource,
        "method": method,
    }


async def _authorize(
    system: SystemContext,
    who: Caller,
    spec: SensitiveAction,
    resource: str | None,
    method: str,
    *,
    audited: bool = True,
) -> None:
    """Refuse, before anything else is done, a caller the action's own permission rule
    refuses (``SensitiveAction.authorize``), and any caller of an undeclared action:
    ``FORBIDDEN`` alike whatever the reason (a resource that does not exist or is not theirs),
    with nothing sent, described or minted. A refusal by a mutation is audited even though the
    call fails."""
    if await spec.allows(system.reader(), resource):
        return
    if audited:
        trail = _trail(system, who, spec, resource, method)

        async def refused(durable: SystemDatabase) -> None:
            await audit.record(
                durable, audit.EventKind.VERIFICATION_FAILED, outcome="forbidden", **trail
            )

        system.durably(refused)
    raise ConvexError(
        ErrorCode.FORBIDDEN,
        "You may not verify for this action",
        action=spec.name,
        resource=resource,
    )


async def _spend(
    system: SystemContext,
    service: SensitiveService,
    who: Caller,
    names: tuple[str, ...],
    trail: dict[str, Any],
) -> dict[str, Any] | None:
    """Spend one attempt from each named budget (``*.ip`` ones are per client address, the
    rest per user). If any refuses, none is spent, and the refusal is answered (and audited)
    as ``RATE_LIMITED`` with the longest wait."""
    address = system.client.ip_address if system.client else None
    keyed = [
        (
            name,
            service.limit_key(f"ip:{address}" if name.endswith(".ip") else f"user:{who.user_id}"),
        )
        for name in names
    ]
    waits = []
    for name, key in keyed:
        result = await check(system.db, name, LIMITS[name], key=key)
        if not result.ok:
            waits.append(result.retry_after_ms or 0)
    if waits:
        db = system.db
        await audit.record(
            db, audit.EventKind.RATE_LIMITED, outcome="refused", detail=names[0], **trail
        )
        return {"ok": False, "code": ErrorCode.RATE_LIMITED.value, "retryAfterMs": max(waits)}
    for name, key in keyed:
        await limit(system.db, name, LIMITS[name], key=key)
    return None


async def _grant(
    db: SystemDatabase,
    who: Caller,
    spec: SensitiveAction,
    resource: str | None,
    method: str,
    trail: dict[str, Any],
) -> dict[str, Any]:
    grant = await mint_grant(
        db,
        user_id=who.user_id,
        session_id=who.session_id,
        action=spec.name,
        resource=resource,
        level=spec.level,
        method=method,
        lifetime_ms=spec.grant_lifetime.total_seconds() * 1000,
    )
    await audit.record(db, audit.EventKind.VERIFICATION_PASSED, outcome="passed", **trail)
    await audit.record(db, audit.EventKind.GRANT_MINTED, outcome="minted", **trail)
    return {"ok": True, "expiresAt": grant["expiresAt"]}


async def _stopped(db: SystemDatabase, who: Caller) -> bool:
    """Whether the account's hard stop for email codes holds this caller's session."""
    record = await failures(db, who.user_id, "email")
    stopped_at = record.get("stoppedAt") if record is not None else None
    return stopped_at is not None and who.session["createdAt"] <= stopped_at


async def _locked(db: SystemDatabase, trail: dict[str, Any]) -> dict[str, Any]:
    await audit.record(db, audit.EventKind.RATE_LIMITED, outcome="locked", **trail)
    return {
        "ok": False,
        "code": VERIFICATION_LOCKED,
        "message": "Too many wrong codes. Sign in again to use email codes.",
    }


async def _count_code_failure(db: SystemDatabase, who: Caller) -> None:
    record = await failures(db, who.user_id, "email")
    count = (int(record["count"]) if record is not None else 0) + 1
    fields: dict[str, Any] = {"count": count, "lastFailureAt": db.now_ms}
    if count >= EMAIL_CODE_HARD_STOP:
        fields.update(count=0, stoppedAt=db.now_ms)
    if record is None:
        await db.insert(FAILURES, {"userId": who.user_id, "method": "email", **fields})
    else:
        await db.patch(record["_id"], fields)


async def _clear_code_failures(db: SystemDatabase, who: Caller) -> None:
    record = await failures(db, who.user_id, "email")
    if record is not None and record["count"]:
        await db.patch(record["_id"], {"count": 0})


def mask_email(address: str) -> str:
    """``ada@example.com`` → ``a**@example.com``: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    keep = local[:1] if len(local) <= 3 else local[:2]
    return f"{keep}{'*' * max(2, len(local) - len(keep))}@{domain}"


# ---- status --------------------------------------------------------------------------------


@query
async def status(ctx: QueryCtx, action: str, resource: str | None = None) -> dict[str, Any]:
    """``{level, satisfied, methods, grantExpiresAt?}`` for the caller's session."""
    _check_target(action, resource)
    system = SystemContext.of(ctx)
    service = system.service(SensitiveService)
    spec = service.registry.get(action)
    who = await caller(system)
    await _authorize(system, who, spec, resource, "", audited=False)
    db = system.db
    window = spec.window
    fresh = (
        window is not None and db.now_ms - who.session["createdAt"] <= window.total_seconds() * 1000
    )
    grant = await live_grant(db, who.session_id, spec.name, resource)
    answer: dict[str, Any] = {
        "level": spec.level,
        "satisfied": fresh or grant is not None,
        "methods": await methods_for(
            db,
            who.user_id,
            spec.level,
            lockout=service.lockout,
            session=who.session,
        ),
    }
    if grant is not None:
        answer["grantExpiresAt"] = grant["expiresAt"]
    return answer


# ---- email codes ---------------------------------------------------------------------------


@mutation
async def sendEmailCode(
    ctx: MutationCtx, action: str, resource: str | None = None
) -> dict[str, Any]:
    """Mail a 6-digit code to the account's own address: ``{ok: true, sentTo, expiresAt}``."""
    _check_target(action, resource)
    system = SystemContext.of(ctx)
    service = system.service(SensitiveService)
    spec = service.registry.get(action)
    who = await caller(system)
    await _authorize(system, who, spec, resource, "email")
    trail = _trail(system, who, spec, resource, "email")
    db = system.db
    if await _stopped(db, who):
        return await _locked(db, trail)
    refused = await _spend(
        system,
        service,
        who,
        ("sensitive.code.send.cooldown", "sensitive.code.send.user", "sensitive.code.send.ip"),
        trail,
    )
    if refused is not None:
        return refused
    description = await spec.describe(ctx, resource)
    random = system.runtime.random
    code = f"{random.randbelow(10**6):06d}"
    while code in description:  # (a name with digits in it): the mail names its code once
        code = f"{random.randbelow(10**6):06d}"
    previous = await current_code(db, who.session_id, spec.name, resource)
    carried = 0
    if previous is not None:
        # A new code replaces the old one but not its failures: resending is no way to more
        # guesses. Failures are forgotten only an hour after the code they were made against.
        if db.now_ms - previous["createdAt"] < FAILURES_REMEMBERED.total_seconds() * 1000:
            carried = int(previous["failures"])
        await db.delete(previous["_id"])
    expires = db.now_ms + CODE_TTL.total_seconds() * 1000
    await db.insert(
        CODES,
        {
            "userId": who.user_id,
            "sessionId": who.session_id,
            "action": spec.name,
            "resource": resource,
            "codeHash": service.code_hash(
                code,
                user_id=who.user_id,
                session_id=who.session_id,
                action=spec.name,
                resource=resource,
            ),
            "expiresAt": expires,
            "failures": carried,
            "createdAt": db.now_ms,
        },
    )
    minutes = int(CODE_TTL.total_seconds() // 60)
    await queue_mail(
        system,
        Mail(
            to=who.user["email"],
            subject=f"Your verification code: {SECRET}",
            text=(
                f"Your code is {SECRET}\n\nIt confirms: {description}\n"
                f"It expires in {minutes} minutes and works once.\n\n"
                "If you did not ask for it, someone may be using your session: sign out of "
                "your other sessions and change your password."
            ),
            secret=code,  # sealed in the outbox, rendered only at send time
        ),
    )
    await audit.record(db, audit.EventKind.CODE_SENT, outcome="sent", **trail)
    return {"ok": True, "sentTo": mask_email(who.user["email"]), "expiresAt": expires}


@mutation
async def verifyEmailCode(
    ctx: MutationCtx, action: str, code: str, resource: str | None = None
) -> dict[str, Any]:
    """Check a mailed code; mint a grant on success. ``INVALID_CODE`` carries ``attemptsLeft``."""
    _check_target(action, resource)
    system = SystemContext.of(ctx)
    service = system.service(SensitiveService)
    spec = service.registry.get(action)
    who = await caller(system)
    await _authorize(system, who, spec, resource, "email")
    trail = _trail(system, who, spec, resource, "email")
    db = system.db
    if await _stopped(db, who):
        return await _locked(db, trail)
    refused = await _spend(
        system, service, who, ("sensitive.code.check.user", "sensitive.code.check.ip"), trail
    )
    if refused is not None:
        return refused
    entry = await current_code(db, who.session_id, spec.name, resource)

    async def failed(answer: dict[str, Any], reason: str) -> dict[str, Any]:
        await audit.record(
            db, audit.EventKind.VERIFICATION_FAILED, outcome="failed", detail=reason, **trail
        )
        return answer

    if entry is None or entry["expiresAt"] <= db.now_ms:
        return await failed({"ok": False, "code": ErrorCode.CODE_EXPIRED.value}, "expired")
    if entry["failures"] >= MAX_CODE_FAILURES:
        dead = {"ok": False, "code": ErrorCode.INVALID_CODE.value, "attemptsLeft": 0}
        return await failed(dead, "dead")
    expected = service.code_hash(
        code.strip(),
        user_id=who.user_id,
        session_id=who.session_id,
        action=spec.name,
        resource=resource,
    )
    if not (_CODE.fullmatch(code.strip()) and hmac.compare_digest(expected, entry["codeHash"])):
        count = int(entry["failures"]) + 1
        await db.patch(entry["_id"], {"failures": count})
        await _count_code_failure(db, who)
        if await _stopped(db, who):
            return await failed(await _locked(db, trail), "hard stop")
        left = max(0, MAX_CODE_FAILURES - count)
        return await failed(
            {"ok": False, "code": ErrorCode.INVALID_CODE.value, "attemptsLeft": left}, "wrong code"
        )
    await db.delete(entry["_id"])  # single use
    await _clear_code_failures(db, who)
    return await _grant(db, who, spec, resource, "email", trail)


# ---- passwords -----------------------------------------------------------------------------


@mutation
async def verifyPassword(
    ctx: MutationCtx, action: str, password: str, resource: str | None = None
) -> dict[str, Any]:
    """Check the account's password; mint a grant on success. Runs in three steps (see
    ``run_verify_password``): this body is never called directly by the engine."""
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
    _check_target(action, resource)
    service = engine.services.get(SensitiveService)
    spec = service.registry.get(action)
    state: dict[str, Any] = {}

    async def spend(txn: Transaction) -> Any:
        system = engine.system_context(SystemDatabase(txn), identity=identity)
        who = await caller(system)
        await _authorize(system, who, spec, resource, "password")
        trail = _trail(system, who, spec, resource, "password")
        db = system.db
        stored = await password_hash(db, who.user_id)
        if stored is None:
            await audit.record(
                db,
                audit.EventKind.VERIFICATION_FAILED,
                outcome="failed",
                detail="no password",
                **trail,
            )
            return {"ok": False, "code": ErrorCode.METHOD_NOT_AVAILABLE.value}
        attempt = await service.password_attempt(db, who)
        refusal = await service.lockout.check(db, attempt)
        if refusal is None:
            refused = await _spend(
                system, service, who, ("sensitive.password.user", "sensitive.password.ip"), trail
            )
            if refused is not None:
                return refused
            # Counted as a failure now, forgiven below if the password is right.
            refusal = await service.lockout.admit(db, attempt)
        if refusal is not None:
            await audit.record(db, audit.EventKind.RATE_LIMITED, outcome="locked", **trail)
            if refusal.code is RefusalCode.PASSWORD_LOCKED:  # until the address is proven
                return {"ok": False, "code": ErrorCode.METHOD_NOT_AVAILABLE.value}
            return {
                "ok": False,
                "code": ErrorCode.RATE_LIMITED.value,
                "retryAfterMs": refusal.retry_after_ms,
            }
        state.update(who=who, trail=trail, stored=stored, attempt=attempt)
        return _PROCEED

    first = await engine.write(
        spend,
        function_path="sensitive:verifyPassword",
        request=request,
        client=client,
        remember=lambda value: value != _PROCEED,
    )
    if first.value != _PROCEED:
        return first
    ok, rehash = await service.passwords.verify(state["stored"], password)
    who: Caller = state["who"]
    trail: dict[str, Any] = state["trail"]
    attempt: Attempt = state["attempt"]

    async def record(txn: Transaction) -> dict[str, Any]:
        db = SystemDatabase(txn)
        account = await credential(db, who.user_id)
        # Still the account's password (a takeover may have dropped it while argon2 ran)?
        right = ok and account is not None and account.get("passwordHash") == state["stored"]
        await service.lockout.settle(db, attempt, ok=right)
        if right and account is not None:
            if rehash is not None:
                await db.patch(account["_id"], {"passwordHash": rehash})
            return await _grant(db, who, spec, resource, "password", trail)
        await audit.record(
            db,
            audit.EventKind.VERIFICATION_FAILED,
            outcome="failed",
            detail="wrong password",
            **trail,
        )
        return {"ok": False, "code": ErrorCode.INVALID_PASSWORD.value}

    return await engine.write(
        record, function_path="sensitive:verifyPassword", request=request, client=client
    )


verifyPassword.runner = run_verify_password  # type: ignore[attr-defined]

FUNCTIONS: dict[str, Any] = {
    "sensitive:status": status,
    "sensitive:sendEmailCode": sendEmailCode,
    "sensitive:verifyEmailCode": verifyEmailCode,
    "sensitive:verifyPassword": verifyPassword,
}
