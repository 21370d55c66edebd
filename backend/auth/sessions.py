"""Sessions: a 256-bit random bearer token, stored only as its SHA-256.

A plain hash (not a slow one) is right here: the token has 256 bits of entropy, so nobody can
guess it from the hash, and a lookup by hash takes constant work whatever the token. The
session's ``createdAt`` is the moment of sign-in; nothing refreshes it, so sensitive actions can
measure freshness from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from backend.auth.jose import b64url
from backend.auth.tables import SESSIONS, USERS
from backend.runtime import Runtime, to_ms
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.context import Identity
from backend.values.ids import is_id_of

Document = dict[str, Any]
DEFAULT_SESSION_TTL = timedelta(days=7)


def new_token(runtime: Runtime) -> str:
    return b64url(runtime.random.token_bytes(32))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """A live session and its user, as their documents (``_sessions``, ``_users``)."""

    session: Document
    user: Document

    @property
    def user_id(self) -> str:
        return str(self.user["_id"])

    @property
    def session_id(self) -> str:
        return str(self.session["_id"])

    @property
    def identity(self) -> Identity:
        return Identity(subject=self.user_id, session_id=self.session_id)


async def create_session(
    db: SystemDatabase,
    runtime: Runtime,
    user_id: str,
    *,
    now_ms: float,
    ttl: timedelta = DEFAULT_SESSION_TTL,
    ip_address: str | None = None,
    user_agent: str | None = None,
    device_hash: str | None = None,
) -> tuple[str, Document]:
    """Create a session for ``user_id`` (signed in on the device ``device_hash`` names, if
    any); returns the token (shown once) and the document."""
    token = new_token(runtime)
    fields = {
        "userId": user_id,
        "tokenHash": token_hash(token),
        "createdAt": now_ms,
        "updatedAt": now_ms,
        "expiresAt": now_ms + ttl.total_seconds() * 1000,
        "ipAddress": ip_address,
        "userAgent": (user_agent or "")[:512] or None,
        "deviceHash": device_hash,
    }
    session_id = await db.insert(SESSIONS, fields)
    return token, {"_id": session_id, **fields}


async def find_session(db: SystemDatabase, token: str, now_ms: float) -> SessionInfo | None:
    """The live session behind a bearer token, with its user; None if unknown or expired."""
    if not token or len(token) > 256:
        return None
    session = await db.query(SESSIONS).with_index("by_token", tokenHash=token_hash(token)).first()
    if session is None or session["expiresAt"] <= now_ms:
        return None
    user = await db.get(session["userId"])
    return None if user is None else SessionInfo(session, user)


async def live_session(
    db: SystemDatabase, session_id: str | None, now_ms: float
) -> Document | None:
    if session_id is None or not is_id_of(session_id, SESSIONS):
        return None
    session = await db.get(session_id)
    if session is None or session["expiresAt"] <= now_ms:
        return None
    return session


async def revoke(db: SystemDatabase, session_id: str) -> bool:
    session = await db.get(session_id)
    if session is None:
        return False
    await db.delete(session_id)
    return True


async def user_sessions(db: SystemDatabase, user_id: str) -> list[Document]:
    return await db.query(SESSIONS).with_index("by_user", userId=user_id).collect()


async def revoke_all(db: SystemDatabase, user_id: str, *, keep: str | None = None) -> int:
    count = 0
    for session in await user_sessions(db, user_id):
        if session["_id"] != keep:
            await db.delete(session["_id"])
            count += 1
    return count


async def resolve_identity(txn: Transaction, identity: Identity) -> Identity | None:
    """``ctx.auth``'s check: the token's session must still exist, be unexpired and belong to
    the token's user, and the user must still exist. The reads land in the query's read set, so
    revoking a session re-runs every live query that looked at the caller: the identity is gone
    within one round.

    The identity then carries the standard claims Convex's ``UserIdentity`` has, as the user's
    account states them now (not as they were when the token was minted): ``name`` and
    ``email``, ``emailVerified``, ``pictureUrl`` (the account's image) and ``updatedAt``. A
    renamed user is seen renamed by every live query that read the identity.
    """
    if identity.external:
        # an outside provider's token, checked when it was presented and dropped when it
        # expires: no session or account of ours is behind it (``auth/providers.py``)
        return identity
    db = SystemDatabase(txn)
    session = await live_session(db, identity.session_id, to_ms(txn.now))
    if session is None or session["userId"] != identity.subject:
        return None
    user = await db.get(identity.subject)
    if user is None:
        return None
    return replace(identity, claims={**identity.claims, **user_claims(user)})


def user_claims(user: Document) -> dict[str, Any]:
    """The standard claims (Convex's names) that a ``_users`` document holds."""
    from backend.auth.timestamps import iso

    claims: dict[str, Any] = {}
    if user.get("email"):
        claims["email"] = user["email"]
        claims["emailVerified"] = bool(user.get("emailVerified"))
    if user.get("name"):
        claims["name"] = user["name"]
    if user.get("image"):
        claims["pictureUrl"] = user["image"]
    if user.get("updatedAt") is not None:
        claims["updatedAt"] = iso(user["updatedAt"])
    return claims


def user_profile(user: Document) -> dict[str, Any]:
    """A user's public profile: ``{id, email, name, emailVerified, image}``, no secrets."""
    return {
        "id": user["_id"],
        "email": user["email"],
        "name": user["name"],
        "emailVerified": user["emailVerified"],
        "image": user.get("image"),
    }


def user_json(user: Document) -> dict[str, Any]:
    """A user as Better Auth's client expects it: the profile and its timestamps."""
    from backend.auth.timestamps import iso

    return {
        **user_profile(user),
        "createdAt": iso(user["createdAt"]),
        "updatedAt": iso(user["updatedAt"]),
    }


def session_json(session: Document) -> dict[str, Any]:
    from backend.auth.timestamps import iso

    return {
        "id": session["_id"],
        "userId": session["userId"],
        "createdAt": iso(session["createdAt"]),
        "updatedAt": iso(session["updatedAt"]),
        "expiresAt": iso(session["expiresAt"]),
        "ipAddress": session.get("ipAddress"),
        "userAgent": session.get("userAgent"),
    }


__all__ = ["USERS", "SessionInfo", "create_session", "find_session", "resolve_identity"]
