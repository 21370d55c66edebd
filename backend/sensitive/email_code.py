"""The email-code method: ``sensitive:sendEmailCode`` and ``sensitive:verifyEmailCode``.

A 6-digit code mailed to the account's own address; the rules (expiry, single use, wrong
tries per code and the account's hard stop) are ``codes.py``'s, and this module reads and
writes what they decide. Every user has an address, so every user is offered this method.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.errors import ErrorCode
from backend.mail import SECRET, Mail, queue_mail
from backend.ratelimit.limiter import TokenBucket
from backend.sensitive import attempts, codes
from backend.sensitive.attempts import Answer
from backend.sensitive.codes import CODE_TTL, CodeVerdict
from backend.sensitive.grants import CODES, current_code, failures, save_failures
from backend.sensitive.records import CodeFailures, EmailCode, Session
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import MutationCtx
from backend.udf.registry import RegisteredFunction, mutation
from backend.udf.system_context import SystemContext

NAME = "email"
VERIFICATION_LOCKED = ErrorCode.VERIFICATION_LOCKED.value
SEND_LIMITS: dict[str, TokenBucket] = {
    # a cooldown of a minute between code mails, and a few an hour
    "sensitive.code.send.cooldown": TokenBucket(1, timedelta(minutes=1)),
    "sensitive.code.send.user": TokenBucket(5, timedelta(hours=1)),
    "sensitive.code.send.ip": TokenBucket(20, timedelta(hours=1)),
}
CHECK_LIMITS: dict[str, TokenBucket] = {
    "sensitive.code.check.user": TokenBucket(10, timedelta(minutes=15)),
    "sensitive.code.check.ip": TokenBucket(30, timedelta(minutes=15)),
}


def mask_email(address: str) -> str:
    """``ada@example.com`` → ``a**@example.com``: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    keep = local[:1] if len(local) <= 3 else local[:2]
    return f"{keep}{'*' * max(2, len(local) - len(keep))}@{domain}"


async def _locked(db: SystemDatabase, fields: dict[str, Any]) -> Answer:
    await audit.record(db, audit.EventKind.RATE_LIMITED, outcome="locked", **fields)
    return attempts.refusal(
        ErrorCode.VERIFICATION_LOCKED,
        message="Too many wrong codes. Sign in again to use email codes.",
    )


async def _begin(
    system: SystemContext, action: str, resource: str | None, limits: Mapping[str, TokenBucket]
) -> attempts.StepUp | Answer:
    """The opening of both calls: ``attempts.begin``; then ``VERIFICATION_LOCKED`` (audited)
    while the account's hard stop holds this session (``codes.is_stopped``), before any
    budget is spent; then one attempt spent from ``limits`` (``RATE_LIMITED``, audited).
    Raises as ``attempts.begin`` does."""
    step = await attempts.begin(system, action, resource, NAME)
    if not isinstance(step, attempts.StepUp):
        return step
    record = CodeFailures.of(await failures(system.db, step.who.user_id, NAME))
    if codes.is_stopped(record, Session.of(step.who.session)):
        return await _locked(system.db, step.fields)
    refused = await attempts.spend(system, step.who, limits, step.fields)
    return step if refused is None else refused


@mutation
async def sendEmailCode(ctx: MutationCtx, action: str, resource: str | None = None) -> Answer:
    """Mail a 6-digit code to the account's own address: ``{ok: true, sentTo, expiresAt}``;
    ``RATE_LIMITED`` (with ``retryAfterMs``) past its budgets, ``VERIFICATION_LOCKED`` at the
    account's hard stop."""
    attempts.check_target(action, resource)
    system = SystemContext.of(ctx)
    step = await _begin(system, action, resource, SEND_LIMITS)
    if not isinstance(step, attempts.StepUp):
        return step
    db, who, spec, fields = system.db, step.who, step.spec, step.fields
    description = await spec.describe(ctx, resource)
    code = codes.draw(system.runtime.random, not_in=description)
    previous = await current_code(db, who.session_id, spec.name, resource)
    carried = codes.carried_failures(EmailCode.of(previous) if previous else None, db.now_ms)
    if previous is not None:
        await db.delete(previous["_id"])
    expires = db.now_ms + CODE_TTL.total_seconds() * 1000
    service = system.service(SensitiveService)
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
    await audit.record(db, audit.EventKind.CODE_SENT, outcome="sent", **fields)
    return {"ok": True, "sentTo": mask_email(who.user["email"]), "expiresAt": expires}


@mutation
async def verifyEmailCode(
    ctx: MutationCtx, action: str, code: str, resource: str | None = None
) -> Answer:
    """Check a mailed code; mint a grant on success. ``INVALID_CODE`` carries ``attemptsLeft``;
    ``CODE_EXPIRED``, ``RATE_LIMITED`` and ``VERIFICATION_LOCKED`` as ``sendEmailCode``."""
    attempts.check_target(action, resource)
    system = SystemContext.of(ctx)
    step = await _begin(system, action, resource, CHECK_LIMITS)
    if not isinstance(step, attempts.StepUp):
        return step
    db, who, spec, fields = system.db, step.who, step.spec, step.fields
    service = system.service(SensitiveService)
    record_doc = await failures(db, who.user_id, NAME)  # the one _begin read, as it stands
    record = CodeFailures.of(record_doc)
    entry_doc = await current_code(db, who.session_id, spec.name, resource)
    entry = EmailCode.of(entry_doc) if entry_doc is not None else None
    expected = service.code_hash(
        code.strip(),
        user_id=who.user_id,
        session_id=who.session_id,
        action=spec.name,
        resource=resource,
    )
    verdict = codes.judge(entry, code, expected, db.now_ms)
    if verdict is CodeVerdict.EXPIRED:
        return await attempts.failed(
            db, attempts.refusal(ErrorCode.CODE_EXPIRED), verdict.value, fields
        )
    if verdict is CodeVerdict.DEAD:
        dead = attempts.refusal(ErrorCode.INVALID_CODE, attemptsLeft=0)
        return await attempts.failed(db, dead, verdict.value, fields)
    assert entry is not None
    assert entry_doc is not None
    if verdict is CodeVerdict.WRONG:
        count = entry.failures + 1
        await db.patch(entry_doc["_id"], {"failures": count})
        record = codes.after_wrong_code(record, db.now_ms)
        await save_failures(db, who.user_id, NAME, record_doc, record)
        if codes.is_stopped(record, Session.of(who.session)):
            return await attempts.failed(db, await _locked(db, fields), "hard stop", fields)
        wrong = attempts.refusal(ErrorCode.INVALID_CODE, attemptsLeft=codes.attempts_left(count))
        return await attempts.failed(db, wrong, verdict.value, fields)
    await db.delete(entry_doc["_id"])  # single use
    if record_doc is not None and record.count:
        await db.patch(record_doc["_id"], {"count": 0})
    return await attempts.grant(db, step)


class EmailCodeMethod:
    """Offered to everyone: every account has an address."""

    name = NAME
    functions: Mapping[str, RegisteredFunction[Any, Any, Any]] = {
        "sensitive:sendEmailCode": sendEmailCode,
        "sensitive:verifyEmailCode": verifyEmailCode,
    }

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool:
        return True


METHOD = EmailCodeMethod()

__all__ = [
    "CHECK_LIMITS",
    "METHOD",
    "SEND_LIMITS",
    "VERIFICATION_LOCKED",
    "mask_email",
    "sendEmailCode",
    "verifyEmailCode",
]
