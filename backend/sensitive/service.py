"""What step-up verification needs from the server: its secret, the password hasher, the
failure records shared with sign-in, and the app's registry of protected actions.

One per engine, registered by the assembly that builds it and found by its class::

    engine.services.register(SensitiveService, SensitiveService(engine, secret, passwords))
    service = SystemContext.of(ctx).service(SensitiveService)
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from backend.auth.lockout import Lockout
from backend.auth.passwords import Passwords
from backend.auth.sessions import SessionInfo
from backend.auth.tables import SESSIONS
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.sensitive import codes
from backend.sensitive.registry import EMPTY, SensitiveActions
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

Document = dict[str, Any]


class SensitiveService:
    def __init__(self, engine: Engine, secret: str, passwords: Passwords) -> None:
        self.engine = engine
        self._secret = secret.encode("utf-8")
        self.passwords = passwords
        # The same failure records as password sign-in (backend/auth/lockout.py).
        self.lockout = Lockout(secret)

    @property
    def registry(self) -> SensitiveActions:
        """The app's protected actions (its ``SensitiveActions``; none if it declares none)."""
        found = self.engine.app.extensions.get("sensitive_actions", EMPTY)
        return found if isinstance(found, SensitiveActions) else EMPTY

    def code_hash(
        self, code: str, *, user_id: str, session_id: str, action: str, resource: str | None
    ) -> str:
        """The keyed hash an email code is stored as (``codes.code_hash``)."""
        return codes.code_hash(
            self._secret,
            code,
            user_id=user_id,
            session_id=session_id,
            action=action,
            resource=resource,
        )

    def limit_key(self, value: str) -> str:
        """A rate-limit key for ``value`` (a user id, an address) that does not show it."""
        return hmac.new(self._secret, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


async def caller(system: SystemContext, *, with_user: bool = True) -> SessionInfo:
    """The signed-in user and their live session; ``UNAUTHENTICATED`` otherwise (a revoked or
    expired session fails here, whatever grants it had). Without ``with_user`` the user's
    document is not read: it holds its ``_id`` only."""
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
    return SessionInfo(session, user)


__all__ = ["SensitiveService", "caller"]
