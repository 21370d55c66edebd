"""The backup-code method: ``sensitive:verifyBackupCode``, and making new codes.

Ten single-use codes are handed out once, when the user first sets up an authenticator app or
a passkey (and again by ``sensitive:regenerateBackupCodes``, itself a protected action): the
way back in when the phone or the key is lost. Each is ten characters from an alphabet
without look-alikes (about 49 bits), shown as ``xxxxx-xxxxx``; only its keyed hash is stored,
bound to the user. A code satisfies one step-up and is spent; using one is audited and mailed
(with how many are left). Wrong codes count on the account's password failure record
(``lockout.py``), as TOTP codes do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.errors import ErrorCode
from backend.ratelimit.limiter import TokenBucket
from backend.runtime import RandomSource
from backend.sensitive import attempts, changes, require
from backend.sensitive.attempts import Answer
from backend.sensitive.factors import BACKUP_CODES, backup_codes, unused_backup_codes
from backend.sensitive.password import admit_guess, right_guess, wrong_guess
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService
from backend.udf.context import MutationCtx
from backend.udf.registry import RegisteredFunction, mutation
from backend.udf.system_context import SystemContext

NAME = "backup_code"
COUNT = 10
LENGTH = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/i/l
LIMITS: dict[str, TokenBucket] = {
    "sensitive.backup.user": TokenBucket(5, timedelta(minutes=15)),
    "sensitive.backup.ip": TokenBucket(20, timedelta(minutes=15)),
}
REGENERATE_LIMITS: dict[str, TokenBucket] = {
    "sensitive.backup.regenerate.user": TokenBucket(5, timedelta(hours=1)),
}


# ---- the pure core ---------------------------------------------------------------------------


def draw(random: RandomSource) -> list[str]:
    """``COUNT`` fresh codes, as shown: ``xxxxx-xxxxx``."""
    drawn: list[str] = []
    while len(drawn) < COUNT:
        raw = "".join(ALPHABET[random.randbelow(len(ALPHABET))] for _ in range(LENGTH))
        code = f"{raw[:5]}-{raw[5:]}"
        if code not in drawn:
            drawn.append(code)
    return drawn


def normalise(presented: str) -> str | None:
    """A presented code as stored (lower case, no dashes or spaces), or None if it cannot be
    one."""
    code = presented.strip().lower().replace("-", "").replace(" ", "")
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def code_hash(service: SensitiveService, user_id: str, normalised: str) -> str:
    return service.keyed("backup-code", user_id, normalised)


# ---- the edges -------------------------------------------------------------------------------


async def issue(system: SystemContext, user_id: str) -> list[str]:
    """Replace the user's backup codes with ``COUNT`` new ones, and return them (shown once)."""
    db = system.db
    service = system.service(SensitiveService)
    for old in await backup_codes(db, user_id):
        await db.delete(old["_id"])
    fresh = draw(system.runtime.random)
    for code in fresh:
        normalised = normalise(code)
        assert normalised is not None
        await db.insert(
            BACKUP_CODES,
            {
                "userId": user_id,
                "codeHash": code_hash(service, user_id, normalised),
                "createdAt": db.now_ms,
            },
        )
    return fresh


async def issue_first(system: SystemContext, user_id: str) -> list[str] | None:
    """At the first passkey or app: ten codes, unless the user has unused ones already."""
    if await unused_backup_codes(system.db, user_id):
        return None
    return await issue(system, user_id)


@mutation
async def regenerateBackupCodes(ctx: MutationCtx) -> dict[str, Any]:
    """Ten new backup codes, the old ones void: ``{ok: true, codes}``, shown this once. A
    protected action (``factor.backup_codes.regenerate``, not proven by a backup code);
    ``RATE_LIMITED`` past a few an hour."""
    system, who, fields = await require.begin_change(ctx, changes.BACKUP_CODES_REGENERATE, NAME)
    refused = await attempts.spend(system, who, REGENERATE_LIMITS, fields)
    if refused is not None:
        return refused
    fresh = await issue(system, who.user_id)
    await changes.record_change(
        system,
        who,
        audit.EventKind.FACTOR_CHANGED,
        NAME,
        action=changes.BACKUP_CODES_REGENERATE,
        subject="New backup codes were made",
        what="New backup codes were made for your account; the old ones no longer work.",
    )
    return {"ok": True, "codes": fresh}


@mutation
async def verifyBackupCode(
    ctx: MutationCtx, action: str, code: str, resource: str | None = None
) -> Answer:
    """Spend one backup code; mint a grant. ``INVALID_CODE``, ``METHOD_NOT_AVAILABLE`` (no
    unused codes, or not for this action), ``RATE_LIMITED`` (with ``retryAfterMs``)."""
    attempts.check_target(action, resource)
    if len(code) > 64:
        return attempts.refusal(ErrorCode.INVALID_CODE)
    system = SystemContext.of(ctx)
    step = await attempts.begin(system, action, resource, NAME)
    if not isinstance(step, attempts.StepUp):
        return step
    db, who = system.db, step.who
    attempt = await admit_guess(system, who, LIMITS, step.fields)
    if isinstance(attempt, dict):
        return attempt
    normalised = normalise(code)
    found = None
    if normalised is not None:
        wanted = code_hash(system.service(SensitiveService), who.user_id, normalised)
        mine = db.query(BACKUP_CODES).with_index("by_user", userId=who.user_id, codeHash=wanted)
        found = await mine.first()
    if found is None or found.get("usedAt") is not None:
        detail = "used code" if found is not None else "wrong code"
        return await wrong_guess(system, attempt, detail, step.fields)
    await right_guess(system, attempt)
    await db.patch(found["_id"], {"usedAt": db.now_ms})
    left = await unused_backup_codes(db, who.user_id)
    await changes.notify(
        system,
        who,
        "A backup code was used",
        f"A backup code was used to confirm: {await step.spec.describe(ctx, resource)}\n"
        f"You have {left} unused backup code{'s' if left != 1 else ''} left.",
    )
    answer = await attempts.grant(db, step)
    return {**answer, "codesLeft": left}


class BackupCodeMethod:
    """Offered to a user with an unused backup code."""

    name = NAME
    functions: Mapping[str, RegisteredFunction[Any, Any, Any]] = {
        "sensitive:verifyBackupCode": verifyBackupCode,
        "sensitive:regenerateBackupCodes": regenerateBackupCodes,
    }

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool:
        return await unused_backup_codes(system.db, who.user_id) > 0


METHOD = BackupCodeMethod()


__all__ = [
    "COUNT",
    "METHOD",
    "draw",
    "issue",
    "issue_first",
    "normalise",
    "regenerateBackupCodes",
    "verifyBackupCode",
]
