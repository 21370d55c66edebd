"""``require_sensitive_action``: the server-side gate a protected mutation calls before writing."""

from __future__ import annotations

from typing import Any

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.errors import ConvexError, ErrorCode
from backend.mail import queue_mail
from backend.sensitive.changes import client_line, notice
from backend.sensitive.grants import GRANTS, live_grant
from backend.sensitive.offers import offer
from backend.sensitive.policy import Verdict, decide, is_fresh
from backend.sensitive.records import Grant, Session, trail
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService, caller
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import MutationCtx
from backend.udf.system_context import SystemContext

SENSITIVE_VERIFICATION_REQUIRED = ErrorCode.SENSITIVE_VERIFICATION_REQUIRED


async def require_sensitive_action(
    ctx: MutationCtx, action: str, resource: str | None = None, *, scope: str | None = None
) -> None:
    """Pass only on a fresh enough session or a live grant for this session, action and
    resource (``policy.py``); a level-4 grant is spent, in this mutation's own transaction
    (so a failed mutation keeps it, and of two calls racing for one grant exactly one
    succeeds).

    Raises ``UNAUTHENTICATED`` without a live session, and otherwise
    ``SENSITIVE_VERIFICATION_REQUIRED`` with ``{action, level, resource, description,
    methods}``: what the client shows before it asks the user to verify, and the methods this
    user can verify with, strongest first. The refusal is audited even though the mutation
    then rolls back. ``scope`` (e.g. an organization id) files the audit events where that
    scope's admins can see them. An action the app never declared is treated as level 4 that
    no verification satisfies. ``TypeError`` for an action or resource that is not a string.
    """
    if not isinstance(action, str) or (resource is not None and not isinstance(resource, str)):
        raise TypeError("require_sensitive_action takes an action name and a resource id")
    system = SystemContext.of(ctx)
    spec = system.service(SensitiveService).registry.get(action)
    who = await caller(system, with_user=False)
    db = system.db
    now = db.now_ms
    session = Session.of(who.session)
    client = system.client
    trail: dict[str, Any] = {
        "userId": who.user_id,
        "sessionId": who.session_id,
        "ipAddress": client.ip_address if client else None,
        "action": spec.name,
        "resource": resource,
        "scope": scope,
    }
    # A fresh session needs no grant: it is not even looked up (nor put in the read set).
    found = (
        None
        if is_fresh(spec, session, now)
        else await live_grant(db, who.session_id, spec.name, resource)
    )
    verdict = decide(spec, session, Grant.of(found) if found else None, resource, now)
    if verdict is Verdict.FRESH:
        await audit.record(db, audit.EventKind.ACTION_PERFORMED, outcome=verdict.value, **trail)
        return
    if verdict.passes and found is not None:
        method = found["method"]
        if verdict is Verdict.SPEND:
            await db.delete_read(found)
            await audit.record(
                db, audit.EventKind.GRANT_SPENT, outcome=verdict.value, method=method, **trail
            )
            await _tell(system, ctx, who.user_id, spec, resource)
        await audit.record(
            db, audit.EventKind.ACTION_PERFORMED, outcome="grant", method=method, **trail
        )
        return

    async def refused(durable: SystemDatabase) -> None:
        await audit.record(durable, audit.EventKind.ACTION_REFUSED, outcome=verdict.value, **trail)

    system.durably(refused)
    description = await spec.describe(ctx, resource)
    raise ConvexError(
        SENSITIVE_VERIFICATION_REQUIRED,
        description,
        action=spec.name,
        level=spec.level,
        resource=resource,
        description=description,
        **(await offer(system, who, spec, resource)).fields(),
    )


async def _tell(
    system: SystemContext,
    ctx: MutationCtx,
    user_id: str,
    spec: SensitiveAction,
    resource: str | None,
) -> None:
    """A critical action (level 4) is mailed to the account: sent if the mutation commits."""
    user = await system.db.get(user_id)
    if user is None:
        return
    description = await spec.describe(ctx, resource)
    await queue_mail(
        system,
        notice(
            str(user["email"]),
            f"Done: {description}"[:150],
            f"This was confirmed and done on your account: {description}",
            when=system.now,
            client=client_line(system),
        ),
    )


async def begin_change(
    ctx: MutationCtx, action: str, method: str
) -> tuple[SystemContext, SessionInfo, dict[str, Any]]:
    """The opening of a call of ``method``'s that changes the caller's factors under the
    protected ``action`` (one without a resource): the caller (``caller`` raises
    ``UNAUTHENTICATED`` without a live session), then their grant for it
    (``require_sensitive_action`` raises ``SENSITIVE_VERIFICATION_REQUIRED``, audited).
    Answers the transaction's context, the caller and the audit fields of the call's events
    (``records.trail``)."""
    system = SystemContext.of(ctx)
    who = await caller(system)
    await require_sensitive_action(ctx, action)
    return system, who, trail(system, who, action, None, method)


__all__ = ["GRANTS", "SENSITIVE_VERIFICATION_REQUIRED", "begin_change", "require_sensitive_action"]
