"""The audit log: an append-only system table.

Every verification code sent, verification passed or failed, grant minted or spent,
protected action performed or refused, and rate limit hit is one ``_audit_events`` document:
when, who, which session and client address, action, resource, method, outcome, and never a
secret (no codes, passwords or tokens: a test checks). Nothing offers an update or a delete of
these documents: app code can only read them, through ``list_events``, and the engine only
appends. Deleting an account leaves its trail in place.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from backend.schema_definition import TableDef, table
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import QueryCtx
from backend.udf.system_context import SystemContext

TABLE = "_audit_events"


class EventKind(StrEnum):
    CODE_SENT = "code.sent"
    VERIFICATION_PASSED = "verification.passed"
    VERIFICATION_FAILED = "verification.failed"
    GRANT_MINTED = "grant.minted"
    GRANT_SPENT = "grant.spent"
    ACTION_PERFORMED = "action.performed"
    ACTION_REFUSED = "action.refused"
    RATE_LIMITED = "rate.limited"
    # the dashboard's writes, with the admin key (backend/dashboard/)
    ADMIN_EDIT = "admin.edit"
    ADMIN_RUN = "admin.run"
    ADMIN_CANCEL = "admin.cancel"
    CHALLENGE_ISSUED = "challenge.issued"  # a passkey ceremony started
    FACTOR_ADDED = "factor.added"
    FACTOR_REMOVED = "factor.removed"
    FACTOR_CHANGED = "factor.changed"  # new backup codes, a new password or address


class AuditEvent(BaseModel):
    at: float
    event: str
    userId: str | None = None
    sessionId: str | None = None
    ipAddress: str | None = None
    action: str | None = None
    resource: str | None = None
    scope: str | None = None  # e.g. the organization an action concerns, for its admins' view
    method: str | None = None
    outcome: str
    detail: str | None = None


TABLES: dict[str, TableDef] = {
    TABLE: table(AuditEvent).index("by_user", "userId", "at").index("by_scope", "scope", "at"),
}


async def record(db: SystemDatabase, event: EventKind, *, outcome: str, **fields: Any) -> str:
    """Append one event, stamped with the transaction's time."""
    clean = {k: v for k, v in fields.items() if v is not None}
    return await db.insert(
        TABLE, {"at": db.now_ms, "event": str(event), "outcome": outcome, **clean}
    )


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_creationTime",)}


async def list_events(
    ctx: QueryCtx, *, user_id: str | None = None, scope: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first (at most ``limit``, up to 500): one user's events, or one scope's (say an
    organization's), read in the caller's transaction. Deciding who may see which trail is
    the app's: this reads whatever it is asked for. Raises ``TypeError`` unless exactly one
    of ``user_id`` and ``scope`` is given."""
    if (user_id is None) == (scope is None):
        raise TypeError("list_events takes user_id or scope")
    db = SystemContext.of(ctx).db
    query = (
        db.query(TABLE).with_index("by_user", userId=user_id)
        if user_id is not None
        else db.query(TABLE).with_index("by_scope", scope=scope)
    )
    rows = await query.order("desc").take(max(1, min(limit, 500)))
    return [_public(r) for r in rows]
