"""The authenticator-app method: enrolment and ``sensitive:verifyTotp``.

Enrolment is two protected calls (``factor.totp.add``, level 3): ``sensitive:enrolTotp``
draws a secret, keeps it sealed under ``SECRET_KEY`` (``service.totp_seal``) and answers the
``otpauth://`` URI, a QR code of it as SVG and the secret itself for typing in; then
``sensitive:confirmTotp {code}`` turns it on once the app shows a right code (and hands out
the first backup codes). ``sensitive:removeTotp`` takes it off (``factor.totp.remove``, never
proven by the app itself). The rules of the codes are ``totp_codes.py``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.errors import ConvexError, ErrorCode
from backend.ratelimit.limiter import TokenBucket
from backend.sensitive import attempts, backup_codes, changes, require, totp_codes
from backend.sensitive.attempts import Answer
from backend.sensitive.factors import TOTP, has_totp, totp_factor
from backend.sensitive.password import admit_guess, right_guess, wrong_guess
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService, caller
from backend.sensitive.totp_codes import TotpVerdict
from backend.udf.context import MutationCtx
from backend.udf.registry import RegisteredFunction, mutation
from backend.udf.system_context import SystemContext

NAME = "totp"
LIMITS: dict[str, TokenBucket] = {
    "sensitive.totp.user": TokenBucket(5, timedelta(minutes=15)),
    "sensitive.totp.ip": TokenBucket(20, timedelta(minutes=15)),
}
ENROL_LIMITS: dict[str, TokenBucket] = {
    "sensitive.totp.enrol.user": TokenBucket(10, timedelta(hours=1)),
}
CONFIRM_LIMITS: dict[str, TokenBucket] = {
    "sensitive.totp.confirm.user": TokenBucket(5, timedelta(minutes=15)),
    "sensitive.totp.confirm.ip": TokenBucket(20, timedelta(minutes=15)),
}


def _bound_to(user_id: str) -> str:
    return f"totp:{user_id}"


def _secret_of(system: SystemContext, factor: dict[str, Any]) -> str:
    seal = system.service(SensitiveService).totp_seal
    return seal.open(factor["sealedSecret"], bound_to=_bound_to(str(factor["userId"])))


@mutation
async def enrolTotp(ctx: MutationCtx) -> dict[str, Any]:
    """Start setting up an authenticator app: ``{ok: true, uri, qrSvg, secret}``. A
    protected action (``factor.totp.add``); ``CONFLICT`` when an app is already set up;
    ``RATE_LIMITED`` past a few starts an hour. Starting again replaces an unconfirmed
    secret."""
    system, who, fields = await require.begin_change(ctx, changes.TOTP_ADD, NAME)
    db = system.db
    existing = await totp_factor(db, who.user_id)
    if existing is not None and existing.get("confirmedAt") is not None:
        raise ConvexError(
            ErrorCode.CONFLICT, "An authenticator app is already set up: remove it first"
        )
    refused = await attempts.spend(system, who, ENROL_LIMITS, fields)
    if refused is not None:
        return refused
    if existing is not None:
        await db.delete(existing["_id"])
    service = system.service(SensitiveService)
    secret = totp_codes.draw_secret(system.runtime.random)
    await db.insert(
        TOTP,
        {
            "userId": who.user_id,
            "sealedSecret": service.totp_seal.seal(
                secret, bound_to=_bound_to(who.user_id), random=system.runtime.random
            ),
            "createdAt": db.now_ms,
        },
    )
    uri = totp_codes.provisioning_uri(
        secret, account=str(who.user["email"]), issuer=service.site_name
    )
    await audit.record(db, audit.EventKind.CHALLENGE_ISSUED, outcome="totp-enrol", **fields)
    return {"ok": True, "uri": uri, "qrSvg": totp_codes.qr_svg(uri), "secret": secret}


@mutation
async def confirmTotp(ctx: MutationCtx, code: str) -> Answer:
    """Turn the app on with a first right code: ``{ok: true, backupCodes}`` (ten codes, shown
    this once, when the user had none; else ``backupCodes`` is null). ``INVALID_CODE`` for a
    wrong code, ``CODE_EXPIRED`` when no set-up was started; counted as guesses are."""
    system, who, fields = await require.begin_change(ctx, changes.TOTP_ADD, NAME)
    db = system.db
    factor = await totp_factor(db, who.user_id)
    if factor is None or factor.get("confirmedAt") is not None:
        return attempts.refusal(ErrorCode.CODE_EXPIRED)
    attempt = await admit_guess(system, who, CONFIRM_LIMITS, fields)
    if isinstance(attempt, dict):
        return attempt
    judged = totp_codes.judge(_secret_of(system, factor), code[:64], db.now_ms, None)
    if judged.verdict is not TotpVerdict.RIGHT:
        return await wrong_guess(system, attempt, judged.verdict.value, fields)
    await right_guess(system, attempt)
    await db.patch(factor["_id"], {"confirmedAt": db.now_ms, "lastStep": judged.step})
    codes = await backup_codes.issue_first(system, who.user_id)
    await changes.record_change(
        system,
        who,
        audit.EventKind.FACTOR_ADDED,
        NAME,
        action=changes.TOTP_ADD,
        subject="An authenticator app was added",
        what="An authenticator app was set up for two-step verification on your account.",
    )
    return {"ok": True, "backupCodes": codes}


@mutation
async def removeTotp(ctx: MutationCtx) -> Answer:
    """Take the authenticator app off: ``{ok: true}``. A protected action
    (``factor.totp.remove``) that a code from the app itself does not satisfy; ``NOT_FOUND``
    when none is set up."""
    from backend.sensitive.require import require_sensitive_action

    system = SystemContext.of(ctx)
    who = await caller(system)
    db = system.db
    factor = await totp_factor(db, who.user_id)
    if factor is None:
        raise ConvexError(ErrorCode.NOT_FOUND, "No authenticator app is set up")
    if factor.get("confirmedAt") is not None:
        await require_sensitive_action(ctx, changes.TOTP_REMOVE)
    await db.delete(factor["_id"])
    if factor.get("confirmedAt") is not None:
        await changes.record_change(
            system,
            who,
            audit.EventKind.FACTOR_REMOVED,
            NAME,
            action=changes.TOTP_REMOVE,
            subject="An authenticator app was removed",
            what="The authenticator app was removed from your account.",
        )
    return {"ok": True}


@mutation
async def verifyTotp(
    ctx: MutationCtx, action: str, code: str, resource: str | None = None
) -> Answer:
    """Check a code from the user's app; mint a grant. ``INVALID_CODE`` for a wrong or a
    replayed code, ``METHOD_NOT_AVAILABLE`` (no app, or not for this action),
    ``RATE_LIMITED`` (with ``retryAfterMs``) while the account's failure record locks."""
    attempts.check_target(action, resource)
    system = SystemContext.of(ctx)
    step = await attempts.begin(system, action, resource, NAME)
    if not isinstance(step, attempts.StepUp):
        return step
    db = system.db
    factor = await totp_factor(db, step.who.user_id)
    assert factor is not None  # offered: it is set up
    attempt = await admit_guess(system, step.who, LIMITS, step.fields)
    if isinstance(attempt, dict):
        return attempt
    judged = totp_codes.judge(_secret_of(system, factor), code[:64], db.now_ms, factor["lastStep"])
    if judged.verdict is not TotpVerdict.RIGHT:
        return await wrong_guess(system, attempt, judged.verdict.value, step.fields)
    await right_guess(system, attempt)
    await db.patch(factor["_id"], {"lastStep": judged.step})
    return await attempts.grant(db, step)


class TotpMethod:
    """Offered to a user whose authenticator app is set up."""

    name = NAME
    functions: Mapping[str, RegisteredFunction[Any, Any, Any]] = {
        "sensitive:enrolTotp": enrolTotp,
        "sensitive:confirmTotp": confirmTotp,
        "sensitive:removeTotp": removeTotp,
        "sensitive:verifyTotp": verifyTotp,
    }

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool:
        return await has_totp(system.db, who.user_id)


METHOD = TotpMethod()

__all__ = ["LIMITS", "METHOD", "confirmTotp", "enrolTotp", "removeTotp", "verifyTotp"]
