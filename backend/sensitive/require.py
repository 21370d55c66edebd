"""``require_sensitive_action``: the server-side gate a protected mutation calls before writing."""

from __future__ import annotations

from typing import Any

from backend import audit
from backend.errors import ConvexError, ErrorCode
from backend.sensitive.grants import GRANTS, live_grant
from backend.sensitive.service import SensitiveService, caller, methods_for
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import MutationCtx
from backend.udf.system_context import SystemContext

SENSITIVE_VERIFICATION_REQUIRED = ErrorCode.SENSITIVE_VERIFICATION_REQUIRED


async def require_sensitive_action(
    ctx: MutationCtx, action: str, resource: str | None = None, *, scope: str | None = None
) -> None:
    """Pass only on a fresh enough session or a live grant for this session, action and
    resource; a level-4 grant is spent, in this mutation's own transaction (so a failed
    mutation keeps it, and of two calls racing for one grant exactly one succeeds).

    Raises ``UNAUTHENTICATED`` without a live session, and otherwise
    ``SENSITIVE_VERIFICATION_REQUIRED`` with ``{action, level, resource, description,
    methods}``. The refusal is audited even though the mutation then rolls back. ``scope``
    (e.g. an organization id) files the audit events where that scope's admins can see them.
    """
    if not isinstance(action, str) or (resource is not None and not isinstance(resource, str)):
        raise TypeError("require_sensitive_action takes an action name and a resource id")
    system = SystemContext.of(ctx)
    service = system.service(SensitiveService)
    spec = service.registry.get(action)
    who = await caller(system, with_user=False)
    db = system.db
    now = db.now_ms
    trail: dict[str, Any] = {
        "userId": who.user_id,
        "sessionId": who.session_id,
        "ipAddress": system.client.ip_address if system.client else None,
        "action": spec.name,
        "resource": resource,
        "scope": scope,
    }
    window = spec.window
    if window is not None and now - who.session["createdAt"] <= window.total_seconds() * 1000:
        await audit.record(db, audit.EventKind.ACTION_PERFORMED, outcome="fresh-session", **trail)
        return
    grant = await live_grant(db, who.session_id, spec.name, resource)
    if grant is not None:
        if spec.level >= 4:
            await db.delete_read(grant)
            await audit.record(
                db, audit.EventKind.GRANT_SPENT, outcome="spent", method=grant["method"], **trail
            )
        await audit.record(
            db, audit.EventKind.ACTION_PERFORMED, outcome="grant", method=grant["method"], **trail
        )
        return

    async def refused(durable: SystemDatabase) -> None:
        await audit.record(
            durable, audit.EventKind.ACTION_REFUSED, outcome="verification-required", **trail
        )

    system.durably(refused)
    raise ConvexError(
        SENSITIVE_VERIFICATION_REQUIRED,
        await spec.describe(ctx, resource),
        action=spec.name,
        level=spec.level,
        resource=resource,
        description=await spec.describe(ctx, resource),
        methods=await methods_for(
            db, who.user_id, spec.level, lockout=service.lockout, session=who.session
        ),
    )


__all__ = ["GRANTS", "SENSITIVE_VERIFICATION_REQUIRED", "ErrorCode", "require_sensitive_action"]
