"""The records step-up verification decides over, as plain typed values.

The pure rules (``policy.py``, ``codes.py``) take these and nothing else: no database, no
clock, no context. The edges read documents, make records of them with ``of``, ask the rules,
and write what the rules answer. Times are milliseconds since the epoch, as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.auth.sessions import SessionInfo
    from backend.udf.system_context import SystemContext

Document = dict[str, Any]


@dataclass(frozen=True)
class Session:
    """A live session: who, and when they signed in (``createdAt``, never refreshed, so it
    measures freshness), and the device it was signed in on."""

    id: str
    user_id: str
    signed_in_at: float
    device_hash: str | None = None

    @classmethod
    def of(cls, document: Document) -> Session:
        device = document.get("deviceHash")
        return cls(
            id=str(document["_id"]),
            user_id=str(document.get("userId", "")),
            signed_in_at=float(document["createdAt"]),
            device_hash=device if isinstance(device, str) else None,
        )


@dataclass(frozen=True)
class Grant:
    """Permission to perform one action on one resource, in one session, until it expires."""

    session_id: str
    action: str
    resource: str | None
    method: str
    expires_at: float
    factor_id: str | None = None  # the passkey that proved it
    last_resort: bool = False  # an excluded method, offered as the user's only one

    @classmethod
    def of(cls, document: Document) -> Grant:
        factor = document.get("factorId")
        return cls(
            session_id=str(document["sessionId"]),
            action=str(document["action"]),
            resource=document.get("resource"),
            method=str(document["method"]),
            expires_at=float(document["expiresAt"]),
            factor_id=factor if isinstance(factor, str) else None,
            last_resort=document.get("lastResort") is True,
        )


@dataclass(frozen=True)
class EmailCode:
    """The latest code mailed for one (session, action, resource): its keyed hash only."""

    code_hash: str
    expires_at: float
    failures: int
    created_at: float

    @classmethod
    def of(cls, document: Document) -> EmailCode:
        return cls(
            code_hash=str(document["codeHash"]),
            expires_at=float(document["expiresAt"]),
            failures=int(document["failures"]),
            created_at=float(document["createdAt"]),
        )


@dataclass(frozen=True)
class CodeFailures:
    """One user's wrong email codes in a row (across codes, actions and sessions), and the
    moment the account's hard stop last engaged (None: never)."""

    count: int = 0
    stopped_at: float | None = None
    last_failure_at: float | None = None

    @classmethod
    def of(cls, document: Document | None) -> CodeFailures:
        if document is None:
            return cls()
        return cls(
            count=int(document["count"]),
            stopped_at=document.get("stoppedAt"),
            last_failure_at=document.get("lastFailureAt"),
        )

    def fields(self) -> Document:
        """The record as a ``_verification_failures`` document's fields."""
        fields: Document = {"count": self.count, "lastFailureAt": self.last_failure_at or 0.0}
        if self.stopped_at is not None:
            fields["stoppedAt"] = self.stopped_at
        return fields


__all__ = ["CodeFailures", "EmailCode", "Grant", "Session", "trail"]


def trail(
    system: SystemContext,
    who: SessionInfo,
    action: str | None,
    resource: str | None,
    method: str,
) -> dict[str, Any]:
    """The audit fields of one attempt at ``action`` (by name), or of one change the caller
    made to their factors (``changes.record_change``; the action that protects it, if any):
    who, from which address, for what, by which method."""
    client = system.client
    return {
        "userId": who.user_id,
        "sessionId": who.session_id,
        "ipAddress": client.ip_address if client else None,
        "action": action,
        "resource": resource,
        "method": method,
    }
