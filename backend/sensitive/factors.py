"""The tables of the factors a user enrols beyond a password: an authenticator app (TOTP),
backup codes, passkeys, and the WebAuthn challenges in flight.

Nothing here is stored readable that would let a copy of the database prove anything: the
TOTP secret is sealed under ``SECRET_KEY`` (AES-GCM, its own key, ``service.py``), backup
codes and challenges are kept as keyed hashes, and a passkey is its public key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from backend.schema_definition import TableDef, table
from backend.transactions.transaction import SystemDatabase

TOTP = "_totp_factors"
BACKUP_CODES = "_backup_codes"
PASSKEYS = "_passkeys"
CHALLENGES = "_webauthn_challenges"
Document = dict[str, Any]


class TotpFactor(BaseModel):
    """One user's authenticator app. ``confirmedAt`` is None until a first right code;
    ``lastStep`` is the newest time step accepted (each is accepted once)."""

    userId: str
    sealedSecret: str
    confirmedAt: float | None = None
    lastStep: int | None = None
    createdAt: float


class BackupCode(BaseModel):
    """One single-use backup code, as its keyed hash; ``usedAt`` once spent."""

    userId: str
    codeHash: str
    usedAt: float | None = None
    createdAt: float


class Passkey(BaseModel):
    """One WebAuthn credential: its id and public key (base64url), the signature counter it
    last reported, and the name its owner gave it."""

    userId: str
    credentialId: str
    publicKey: str
    signCount: int
    name: str
    transports: list[str] = []
    backedUp: bool = False
    createdAt: float
    lastUsedAt: float | None = None


class Challenge(BaseModel):
    """A WebAuthn challenge handed out and not yet answered: its keyed hash, bound to one
    session and purpose (``register``, or ``step-up`` for one action and resource)."""

    userId: str
    sessionId: str
    purpose: str
    action: str | None = None
    resource: str | None = None
    challengeHash: str
    expiresAt: float
    createdAt: float


TABLES: dict[str, TableDef] = {
    TOTP: table(TotpFactor).index("by_user", "userId"),
    BACKUP_CODES: table(BackupCode).index("by_user", "userId", "codeHash"),
    PASSKEYS: table(Passkey)
    .index("by_user", "userId", "createdAt")
    .index("by_credential", "credentialId"),
    CHALLENGES: table(Challenge).index("by_target", "sessionId", "purpose", "action", "resource"),
}


async def totp_factor(db: SystemDatabase, user_id: str) -> Document | None:
    """The user's authenticator app (confirmed or not), or None."""
    return await db.query(TOTP).with_index("by_user", userId=user_id).first()


async def has_totp(db: SystemDatabase, user_id: str) -> bool:
    found = await totp_factor(db, user_id)
    return found is not None and found.get("confirmedAt") is not None


async def backup_codes(db: SystemDatabase, user_id: str) -> list[Document]:
    return await db.query(BACKUP_CODES).with_index("by_user", userId=user_id).collect()


async def unused_backup_codes(db: SystemDatabase, user_id: str) -> int:
    return sum(1 for c in await backup_codes(db, user_id) if c.get("usedAt") is None)


async def passkeys(db: SystemDatabase, user_id: str) -> list[Document]:
    """The user's passkeys, oldest first."""
    return await db.query(PASSKEYS).with_index("by_user", userId=user_id).collect()


async def passkey_by_credential(db: SystemDatabase, credential_id: str) -> Document | None:
    return await db.query(PASSKEYS).with_index("by_credential", credentialId=credential_id).first()


async def challenge_for(
    db: SystemDatabase, session_id: str, purpose: str, action: str | None, resource: str | None
) -> Document | None:
    return await (
        db.query(CHALLENGES)
        .with_index(
            "by_target", sessionId=session_id, purpose=purpose, action=action, resource=resource
        )
        .first()
    )


async def replace_challenge(db: SystemDatabase, fields: Document) -> None:
    """Store a new challenge for its target, dropping the one it replaces."""
    old = await challenge_for(
        db, fields["sessionId"], fields["purpose"], fields.get("action"), fields.get("resource")
    )
    if old is not None:
        await db.delete(old["_id"])
    await db.insert(CHALLENGES, fields)


__all__ = [
    "BACKUP_CODES",
    "CHALLENGES",
    "PASSKEYS",
    "TABLES",
    "TOTP",
    "backup_codes",
    "challenge_for",
    "has_totp",
    "passkey_by_credential",
    "passkeys",
    "replace_challenge",
    "totp_factor",
    "unused_backup_codes",
]
