"""The auth system tables: users, their linked accounts, sessions, one-time verifications,
the devices that have signed in, and the failure records of password checks.

Like every table they live in the log, so ``verify-log`` covers them and a revoked session is
a commit that live queries react to. App functions never see them (their names start with
``_``); they reach the caller's identity through ``ctx.auth`` only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel

from backend.schema_definition import Id, TableDef, table

USERS = "_users"
ACCOUNTS = "_accounts"
SESSIONS = "_sessions"
VERIFICATIONS = "_verifications"
DEVICES = "_devices"
PASSWORD_FAILURES = "_password_failures"  # noqa: S105 - a table name


class User(BaseModel):
    email: str  # normalised to lower case
    name: str
    emailVerified: bool
    image: str | None = None
    createdAt: float
    updatedAt: float


class Account(BaseModel):
    """A way to sign in: ``credential`` (a password) or an OAuth provider's subject.

    ``emailVerified`` (OAuth identities): whether the provider vouched for the user's address
    when the identity was linked; an identity it did not vouch for is dropped by the first
    proof of the address. ``passwordSetAt`` (credential): when the password was chosen, which
    a verification link names so that it confirms that password and no other.
    """

    userId: Annotated[str, Id(USERS)]
    providerId: str
    accountId: str
    passwordHash: str | None = None
    emailVerified: bool | None = None
    passwordSetAt: float | None = None
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
    deviceHash: str | None = None  # the device that signed in (``devices.py``), if known


class Verification(BaseModel):
    """A single-use secret in flight (a magic link, an email verification link, an OAuth
    login), stored by its hash."""

    purpose: Literal["magic-link", "email-verification", "oauth"]
    identifierHash: str
    value: dict[str, Any]
    expiresAt: float
    createdAt: float


class Device(BaseModel):
    """A browser (or any client keeping cookies) that has signed in to this user before.

    The device cookie carries a random id; only its keyed hash is stored here. A device
    counts as known while its last sign-in is younger than ``devices.DEVICE_TTL``.
    """

    userId: Annotated[str, Id(USERS)]
    deviceHash: str
    lastSignInAt: float
    createdAt: float


class PasswordFailures(BaseModel):
    """Failed password checks of one account (``key`` names the address) or of one known
    device of an account; see ``lockout.py`` for what each count means."""

    key: str
    failures: int
    consecutive: int
    lockedUntil: float | None = None
    lastFailureAt: float


TABLES: dict[str, TableDef] = {
    USERS: table(User).index("by_email", "email"),
    ACCOUNTS: table(Account)
    .index("by_user", "userId", "providerId")
    .index("by_provider", "providerId", "accountId"),
    SESSIONS: table(Session).index("by_token", "tokenHash").index("by_user", "userId"),
    VERIFICATIONS: table(Verification).index("by_identifier", "purpose", "identifierHash"),
    DEVICES: table(Device).index("by_user", "userId", "deviceHash"),
    PASSWORD_FAILURES: table(PasswordFailures).index("by_key", "key"),
}
