"""Changing the password and the email address: protected actions of the engine's own.

``sensitive:changePassword {currentPassword, newPassword, revokeOtherSessions?}`` (and
``POST /api/auth/change-password``, in Better Auth's shape) needs a grant for
``account.password.change`` that the password did not prove (a stolen session that phished
the password still needs a second factor or the mailbox), and the current password, checked
on the failure record sign-in shares. argon2 runs between transactions, as for
``sensitive:verifyPassword``.

``sensitive:changeEmail {newEmail}`` (and ``POST /api/auth/change-email``) needs a grant for
``account.email.change`` that a code by mail did not prove, and is confirmed from both
addresses: a link goes to the current address and one to the new, each good for an hour and
once, and the address changes only when both were followed (``GET
/api/auth/change-email/verify?token=``). A new address that already has an account is
answered alike (no enumeration) and its owner told; the change is then refused at the end.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from backend import audit
from backend.auth import sessions
from backend.auth.lockout import Attempt
from backend.auth.passwords import check_password_rules
from backend.auth.proof import credential
from backend.auth.service import normalise_email
from backend.auth.tables import USERS
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.mail import SECRET, Mail, queue_mail
from backend.ratelimit.limiter import TokenBucket
from backend.schema_definition import TableDef, table
from backend.sensitive import attempts, changes
from backend.sensitive.attempts import Answer
from backend.sensitive.password import LIMITS as PASSWORD_LIMITS
from backend.sensitive.password import admit_guess, right_guess, wrong_guess
from backend.sensitive.require import require_sensitive_action
from backend.sensitive.service import SensitiveService, caller
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.context import Auth, Identity, MutationCtx
from backend.udf.registry import mutation
from backend.udf.steps import Proceed, Steps, mutation_in_steps
from backend.udf.system_context import SystemContext

EMAIL_CHANGES = "_email_changes"
EMAIL_CHANGE_TTL = timedelta(hours=1)
CHANGE_LIMITS = {
    "sensitive.email.change.user": TokenBucket(5, timedelta(hours=1)),
}
Document = dict[str, Any]


class EmailChange(BaseModel):
    """A change of address waiting for its two confirmations (each link's keyed hash)."""

    userId: str
    newEmail: str
    oldTokenHash: str
    newTokenHash: str
    oldConfirmedAt: float | None = None
    newConfirmedAt: float | None = None
    expiresAt: float
    createdAt: float


TABLES: dict[str, TableDef] = {
    EMAIL_CHANGES: table(EmailChange)
    .index("by_user", "userId")
    .index("by_old_token", "oldTokenHash")
    .index("by_new_token", "newTokenHash")
}


def _ctx(engine: Engine, txn: Transaction, identity: Identity | None) -> MutationCtx:
    return MutationCtx(engine, txn, Auth(identity, txn, engine.identity_resolver))


# ---- the password ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Admitted:
    attempt: Attempt
    stored: str
    fields: dict[str, Any]


@mutation_in_steps
async def changePassword(
    steps: Steps,
    currentPassword: str,
    newPassword: str,
    revokeOtherSessions: bool = False,
) -> dict[str, Any]:
    """Change the password: ``{ok: true}``; ``INVALID_PASSWORD`` for a wrong current one,
    ``RATE_LIMITED``; throws ``SENSITIVE_VERIFICATION_REQUIRED`` without a grant for
    ``account.password.change``, ``PASSWORD_TOO_SHORT``/``_WEAK``/``_LONG``.

    In steps (``udf/steps.py``): check the grant and spend a guess at the current password
    (one transaction), run argon2 on both passwords outside any transaction, then check the
    grant again and record the change (a second transaction)."""

    async def admit(ctx: MutationCtx) -> Answer | Proceed[_Admitted]:
        system = SystemContext.of(ctx)
        who = await caller(system)
        check_password_rules(newPassword, email=str(who.user["email"]))
        await require_sensitive_action(ctx, changes.PASSWORD_CHANGE)
        account = await credential(system.db, who.user_id)
        if account is None or account.get("passwordHash") is None:
            raise ConvexError(ErrorCode.INVALID_ARGUMENT, "This account has no password to change")
        fields = attempts.trail(system, who, changes.PASSWORD_CHANGE, None, "password")
        attempt = await admit_guess(system, who, PASSWORD_LIMITS, fields)
        if not isinstance(attempt, Attempt):
            return attempt
        return Proceed(_Admitted(attempt, account["passwordHash"], fields))

    first = await steps.mutation(admit)
    if not isinstance(first, Proceed):
        return first
    admitted = first.state
    service = steps.engine.services.get(SensitiveService)
    ok, _ = await service.passwords.verify(admitted.stored, currentPassword)
    new_hash = await service.passwords.hash(newPassword) if ok else None

    async def record(ctx: MutationCtx) -> Answer:
        system = SystemContext.of(ctx)
        db = system.db
        who = await caller(system)
        account = await credential(db, who.user_id)
        right = ok and account is not None and account.get("passwordHash") == admitted.stored
        if not right or account is None or new_hash is None:
            return await wrong_guess(
                system,
                admitted.attempt,
                "wrong password",
                admitted.fields,
                code=ErrorCode.INVALID_PASSWORD,
            )
        await right_guess(system, admitted.attempt)
        await require_sensitive_action(ctx, changes.PASSWORD_CHANGE)
        await db.patch(account["_id"], {"passwordHash": new_hash, "passwordSetAt": db.now_ms})
        revoked = 0
        if revokeOtherSessions:
            revoked = await sessions.revoke_all(db, who.user_id, keep=who.session_id)
        await changes.record_change(
            system,
            who,
            audit.EventKind.FACTOR_CHANGED,
            "password",
            action=changes.PASSWORD_CHANGE,
            subject="Your password was changed",
            what="The password of your account was changed"
            + (f", and {revoked} other session(s) were signed out." if revoked else "."),
        )
        return {"ok": True}

    return await steps.mutation(record)


# ---- the email address -----------------------------------------------------------------------


def _token_hash(service: SensitiveService, token: str) -> str:
    return service.keyed("email-change", token)


def _draw_token(system: SystemContext) -> str:
    raw = system.runtime.random.token_bytes(32)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _confirm_mail(to: str, link: str, *, old: str, new: str, side: str) -> Mail:
    which = "your current address" if side == "old" else "your new address"
    return Mail(
        to=to,
        subject="Confirm the change of your email address",
        text=(
            f"Someone asked to change the email address of your account from {old} to {new}. "
            f"This mail went to {which}; a second one went to the other. The change happens "
            f"only when both links are opened, within an hour:\n\n{SECRET}\n\n"
            "If you did not ask for it, do not open the link, and check your account's "
            "Security page: someone may be using your session."
        ),
        secret=link,
    )


@mutation
async def changeEmail(ctx: MutationCtx, newEmail: str) -> dict[str, Any]:
    """Start changing the address: ``{ok: true}``, a link mailed to each address. Throws
    ``SENSITIVE_VERIFICATION_REQUIRED`` without a grant for ``account.email.change``,
    ``INVALID_EMAIL``; answers ``RATE_LIMITED`` past a few an hour."""
    system = SystemContext.of(ctx)
    who = await caller(system)
    address = normalise_email(newEmail)
    await require_sensitive_action(ctx, changes.EMAIL_CHANGE)
    db = system.db
    service = system.service(SensitiveService)
    fields = attempts.trail(system, who, changes.EMAIL_CHANGE, None, "email")
    refused = await attempts.spend(system, who, CHANGE_LIMITS, fields)
    if refused is not None:
        return refused
    old = str(who.user["email"])
    if address == old:
        raise ConvexError(ErrorCode.INVALID_EMAIL, "That is already your address", path="email")
    async for pending in db.query(EMAIL_CHANGES).with_index("by_user", userId=who.user_id):
        await db.delete(pending["_id"])
    old_token, new_token = _draw_token(system), _draw_token(system)
    await db.insert(
        EMAIL_CHANGES,
        {
            "userId": who.user_id,
            "newEmail": address,
            "oldTokenHash": _token_hash(service, old_token),
            "newTokenHash": _token_hash(service, new_token),
            "expiresAt": db.now_ms + EMAIL_CHANGE_TTL.total_seconds() * 1000,
            "createdAt": db.now_ms,
        },
    )
    base = service.origin + "/api/auth/change-email/verify?token="
    await queue_mail(system, _confirm_mail(old, base + old_token, old=old, new=address, side="old"))
    taken = await db.query(USERS).with_index("by_email", email=address).first()
    if taken is None:
        await queue_mail(
            system, _confirm_mail(address, base + new_token, old=old, new=address, side="new")
        )
    else:  # the same answer; the owner of the address is told, and the change cannot finish
        await queue_mail(
            system,
            Mail(
                to=address,
                subject="Someone tried to move an account to your address",
                text=(
                    "Someone tried to change another account's email address to this one, "
                    "which already has an account. Nothing has changed."
                ),
            ),
        )
    await audit.record(db, audit.EventKind.CODE_SENT, outcome="email-change", **fields)
    return {"ok": True}


async def confirm_email_change(engine: Engine, token: Any) -> str:
    """Follow one of the two links: ``"pending"`` (the other is still to be followed),
    ``"changed"``, or ``INVALID_TOKEN`` / ``TOKEN_EXPIRED`` / ``USER_ALREADY_EXISTS...``."""
    if not isinstance(token, str) or not token or len(token) > 200:
        raise ConvexError(ErrorCode.INVALID_TOKEN, "This link is not valid")
    service = engine.services.get(SensitiveService)
    hashed = _token_hash(service, token)

    async def confirm(db: SystemDatabase) -> str | ErrorCode:
        side = "old"
        found = (
            await db.query(EMAIL_CHANGES).with_index("by_old_token", oldTokenHash=hashed).first()
        )
        if found is None:
            side = "new"
            found = await (
                db.query(EMAIL_CHANGES).with_index("by_new_token", newTokenHash=hashed).first()
            )
        if found is None:
            return ErrorCode.INVALID_TOKEN
        if found["expiresAt"] <= db.now_ms:
            await db.delete(found["_id"])
            return ErrorCode.TOKEN_EXPIRED
        stamp = {f"{side}ConfirmedAt": db.now_ms}
        merged = {**found, **stamp}
        if merged.get("oldConfirmedAt") is None or merged.get("newConfirmedAt") is None:
            await db.patch(found["_id"], stamp)
            return "pending"
        await db.delete(found["_id"])
        user = await db.get(found["userId"])
        if user is None:
            return ErrorCode.INVALID_TOKEN
        if await db.query(USERS).with_index("by_email", email=found["newEmail"]).first():
            return ErrorCode.USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL
        old = str(user["email"])
        await db.patch(user["_id"], {"email": found["newEmail"], "emailVerified": True})
        system = engine.system_context(db)
        await audit.record(
            db,
            audit.EventKind.FACTOR_CHANGED,
            outcome="done",
            userId=found["userId"],
            action=changes.EMAIL_CHANGE,
            method="email",
        )
        for to in (old, found["newEmail"]):
            await queue_mail(
                system,
                changes.notice(
                    to,
                    "Your email address was changed",
                    f"The email address of your account was changed from {old} to "
                    f"{found['newEmail']}.",
                    when=system.now,
                    client="a confirmation link",
                ),
            )
        return "changed"

    outcome, _ = await engine.system_write(confirm, label="_system/auth:confirmEmailChange")
    if isinstance(outcome, ErrorCode):
        raise ConvexError(outcome, "This link is not valid or has expired")
    return outcome


FUNCTIONS: dict[str, Any] = {
    "sensitive:changePassword": changePassword,
    "sensitive:changeEmail": changeEmail,
}

__all__ = [
    "EMAIL_CHANGES",
    "FUNCTIONS",
    "TABLES",
    "changeEmail",
    "changePassword",
    "confirm_email_change",
]
