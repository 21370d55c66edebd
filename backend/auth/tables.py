"""The auth system tables: users, their linked accounts, sessions, one-time verifications.

Like every table they live in the log, so ``verify-log`` covers them and a revoked session is
a commit that live queries react to. App functions never see them (their names start with
``_``); they reach the caller's identity through ``ctx.auth`` only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel

from backend.schema import Id, TableDef, table

USERS = "_users"
ACCOUNTS = "_accounts"
SESSIONS = "_sessions"
VERIFICATIONS = "_verifications"


class User(BaseModel):
    email: str  # normalised to lower case
    name: str
    emailVerified: bool
    image: str | None = None
    createdAt: float
    updatedAt: float


class Account(BaseModel):
    """A way to sign in: ``credential`` (a password) or an OAuth provider's subject."""

    userId: Annotated[str, Id(USERS)]
    providerId: str
    accountId: str
    passwordHash: str | None = None
    createdAt: float
    updatedAt: float


class Session(BaseModel):
    userId: Annotated[str, Id(USERS)]
    tokenHash: str  # SHA-256 of the 256-bit bearer token; the token itself is never stored
    createdAt: float  # the sign-in: freshness for sensitive actions counts from here
    updatedAt: float
    expiresAt: float
    ipAddress: str | None = None
    userAgent: str | None = None


class Verification(BaseModel):
    """A single-use secret in flight (a magic link, an OAuth login), stored by its hash."""

    purpose: Literal["magic-link", "oauth"]
    identifierHash: str
    value: dict[str, Any]
    expiresAt: float
    createdAt: float


TABLES: dict[str, TableDef] = {
    USERS: table(User).index("by_email", "email"),
    ACCOUNTS: table(Account)
    .index("by_user", "userId", "providerId")
    .index("by_provider", "providerId", "accountId"),
    SESSIONS: table(Session).index("by_token", "tokenHash").index("by_user", "userId"),
    VERIFICATIONS: table(Verification).index("by_identifier", "purpose", "identifierHash"),
}
