"""The sensitive-action system tables: grants, email codes, and failure counts.

A grant is bound to one session, one action and one resource, and lives for minutes. It stays
in the database: the client holds nothing that could be stolen and replayed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from backend.schema_definition import TableDef, table
from backend.sensitive.records import CodeFailures
from backend.transactions.transaction import SystemDatabase

GRANTS = "_sensitive_grants"
CODES = "_email_codes"
FAILURES = "_verification_failures"
Document = dict[str, Any]


class Grant(BaseModel):
    userId: str
    sessionId: str
    action: str
    resource: str | None = None
    level: int
    method: str
    factorId: str | None = None  # the passkey that proved it, for a passkey's grant
    lastResort: bool | None = None  # proven by an excluded method, the user's only one
    expiresAt: float
    createdAt: float


class EmailCode(BaseModel):
    """The latest code for one (session, action, resource); only its keyed hash is kept."""

    userId: str
    sessionId: str
    action: str
    resource: str | None = None
    codeHash: str
    expiresAt: float
    failures: int
    createdAt: float


class Failures(BaseModel):
    """Consecutive failed checks of one user by one method. Email codes (``email``): the
    count and ``stoppedAt``, the account's hard stop, after which no session signed in before
    it may check a code again. Password records (``password``) were written before sign-in and
    step-up shared one failure record (``backend/auth/lockout.py``); they are kept so that
    stored documents still validate."""

    userId: str
    method: str
    count: int
    lockedUntil: float | None = None
    lastFailureAt: float
    stoppedAt: float | None = None


TABLES: dict[str, TableDef] = {
    GRANTS: table(Grant).index("by_target", "sessionId", "action", "resource"),
    CODES: table(EmailCode).index("by_target", "sessionId", "action", "resource"),
    FAILURES: table(Failures).index("by_user", "userId", "method"),
}


async def live_grant(
    db: SystemDatabase, session_id: str, action: str, resource: str | None
) -> Document | None:
    """The unexpired grant for exactly this session, action and resource (there is at most
    one: minting replaces the previous one)."""
    found = await (
        db.query(GRANTS)
        .with_index("by_target", sessionId=session_id, action=action, resource=resource)
        .first()
    )
    return found if found is not None and found["expiresAt"] > db.now_ms else None


async def mint_grant(
    db: SystemDatabase,
    *,
    user_id: str,
    session_id: str,
    action: str,
    resource: str | None,
    level: int,
    method: str,
    lifetime_ms: float,
    factor_id: str | None = None,
    last_resort: bool = False,
) -> Document:
    async for old in db.query(GRANTS).with_index(
        "by_target", sessionId=session_id, action=action, resource=resource
    ):
        await db.delete(old["_id"])
    fields = {
        "userId": user_id,
        "sessionId": session_id,
        "action": action,
        "resource": resource,
        "level": level,
        "method": method,
        "expiresAt": db.now_ms + lifetime_ms,
        "createdAt": db.now_ms,
    }
    if factor_id is not None:
        fields["factorId"] = factor_id
    if last_resort:
        fields["lastResort"] = True
    return {"_id": await db.insert(GRANTS, fields), **fields}


async def current_code(
    db: SystemDatabase, session_id: str, action: str, resource: str | None
) -> Document | None:
    return await (
        db.query(CODES)
        .with_index("by_target", sessionId=session_id, action=action, resource=resource)
        .first()
    )


async def failures(db: SystemDatabase, user_id: str, method: str) -> Document | None:
    return await db.query(FAILURES).with_index("by_user", userId=user_id, method=method).first()


async def save_failures(
    db: SystemDatabase,
    user_id: str,
    method: str,
    existing: Document | None,
    record: CodeFailures,
) -> None:
    """Store ``record`` as the user's failures for ``method`` (``existing``: its document, as
    ``failures`` found it, or None)."""
    if existing is None:
        await db.insert(FAILURES, {"userId": user_id, "method": method, **record.fields()})
    else:
        await db.patch(existing["_id"], record.fields())
