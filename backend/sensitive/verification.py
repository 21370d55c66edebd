"""The verification functions: ``sensitive:status`` here, and each method's own
(``sensitive:verifyPassword``, ``sensitive:sendEmailCode``, ``sensitive:verifyEmailCode``).

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

from typing import Any

from backend.sensitive import factors as stored
from backend.sensitive import methods, offers
from backend.sensitive.attempts import authorize, check_target
from backend.sensitive.grants import live_grant
from backend.sensitive.policy import decide
from backend.sensitive.records import Grant, Session
from backend.sensitive.service import SensitiveService, caller
from backend.udf.context import QueryCtx
from backend.udf.registry import query
from backend.udf.system_context import SystemContext


@query
async def status(ctx: QueryCtx, action: str, resource: str | None = None) -> dict[str, Any]:
    """``{level, satisfied, methods, grantExpiresAt?}`` for the caller's session: what
    ``require_sensitive_action`` would decide now (``policy.py``), and how to verify."""
    check_target(action, resource)
    system = SystemContext.of(ctx)
    spec = system.service(SensitiveService).registry.get(action)
    who = await caller(system)
    await authorize(system, who, spec, resource, "", audited=False)
    db = system.db
    grant = await live_grant(db, who.session_id, spec.name, resource)
    verdict = decide(
        spec, Session.of(who.session), Grant.of(grant) if grant else None, resource, db.now_ms
    )
    answer: dict[str, Any] = {
        "level": spec.level,
        "satisfied": verdict.passes,
        **(await offers.offer(system, who, spec, resource)).fields(),
    }
    if grant is not None:
        answer["grantExpiresAt"] = grant["expiresAt"]
    return answer


@query
async def factors(ctx: QueryCtx) -> dict[str, Any]:
    """The caller's factors, for a Security page: ``{passkeys, totp, backupCodesLeft}``
    (how many passkeys, whether an authenticator app is on, how many unused backup codes)."""
    system = SystemContext.of(ctx)
    who = await caller(system, with_user=False)
    db = system.db
    return {
        "passkeys": len(await stored.passkeys(db, who.user_id)),
        "totp": await stored.has_totp(db, who.user_id),
        "backupCodesLeft": await stored.unused_backup_codes(db, who.user_id),
    }


FUNCTIONS: dict[str, Any] = {
    "sensitive:status": status,
    "sensitive:factors": factors,
    **methods.functions(),
}
