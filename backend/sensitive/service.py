"""What the sensitive-action checks need from the server: its secret, the password hasher, and
the app's registry. One per engine, registered as ``engine.services.get(SensitiveService)``."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from backend.auth import devices
from backend.auth.lockout import Attempt, Lockout
from backend.auth.passwords import Passwords
from backend.auth.tables import ACCOUNTS, SESSIONS
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.sensitive.registry import EMPTY, SensitiveActions
from backend.transactions.transaction import SystemDatabase
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

Document = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    user: Document
    session: Document

    @property
    def user_id(self) -> str:
        return str(self.user["_id"])

    @property
    def session_id(self) -> str:
        return str(self.session["_id"])


class SensitiveService:
    def __init__(self, engine: Engine, secret: str, passwords: Passwords) -> None:
        self.engine = engine
        self._secret = secret.encode("utf-8")
        self.passwords = passwords
        # The same failure records as password sign-in (backend/auth/lockout.py).
        self.lockout = Lockout(secret)

    @property
    def registry(self) -> SensitiveActions:
        found = self.engine.app.extensions.get("sensitive_actions", EMPTY)
        return found if isinstance(found, SensitiveActions) else EMPTY

    def code_hash(
        self, code: str, *, user_id: str, session_id: str, action: str, resource: str | None
    ) -> str:
        """HMAC of the code and everything it is for: a leaked table reveals no codes, and a
        code for one action or session is worthless for another."""
        message = "\x1f".join(("email-code", code, user_id, session_id, action, resource or ""))
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def limit_key(self, value: str) -> str:
        return hmac.new(self._secret, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    async def password_attempt(self, db: SystemDatabase, who: Caller) -> Attempt:
        """A step-up password check, as ``lockout.py`` counts it: on the account's record, and
        made by the device the session was signed in on (an unknown client without one)."""
        device_hash = who.session.get("deviceHash")
        if isinstance(device_hash, str) and await devices.is_known(db, who.user_id, device_hash):
            return self.lockout.attempt(str(who.user["email"]), (who.user_id, device_hash))
        return self.lockout.attempt(str(who.user["email"]), None)


async def caller(system: SystemContext, *, with_user: bool = True) -> Caller:
    """The signed-in user and their live session; ``UNAUTHENTICATED`` otherwise (a revoked or
    expired session fails here, whatever grants it had)."""
    identity = await system.auth.get_user_identity()
    if (
        identity is None
        or identity.session_id is None
        or not is_id_of(identity.session_id, SESSIONS)
    ):
        raise ConvexError(ErrorCode.UNAUTHENTICATED, "You must be signed in")
    db = system.db
    session = await db.get(identity.session_id)
    user = await db.get(identity.subject) if with_user else {"_id": identity.subject}
    if session is None or user is None:
        raise ConvexError(ErrorCode.UNAUTHENTICATED, "You must be signed in")
    return Caller(user, session)


async def password_hash(db: SystemDatabase, user_id: str) -> str | None:
    account = await (
        db.query(ACCOUNTS).with_index("by_user", userId=user_id, providerId="credential").first()
    )
    return None if account is None else account.get("passwordHash")


async def methods_for(
    db: SystemDatabase,
    user_id: str,
    level: int,
    *,
    lockout: Lockout | None = None,
    session: Document | None = None,
) -> list[str]:
    """The verification methods this user can use for this level. Both methods mint grants,
    which satisfy every level; a user without a password is offered the email code alone, and
    so is one whose password checks are at the hard stop (``lockout.py``: given ``lockout``
    and the caller's ``session``)."""
    methods = ["email"]
    if await password_hash(db, user_id) is None:
        return methods
    if lockout is not None and session is not None:
        user = await db.get(user_id)
        device_hash = session.get("deviceHash")
        known = isinstance(device_hash, str) and await devices.is_known(db, user_id, device_hash)
        if user is not None and await lockout.stopped(db, str(user["email"]), known):
            return methods
    return ["password", *methods]
