"""What step-up verification needs from the server: its secret, the password hasher, the
failure records shared with sign-in, and the app's registry of protected actions.

One per engine, registered by the assembly that builds it and found by its class::

    service = SensitiveService(engine, secret, passwords, methods=methods.METHODS)
    engine.services.register(SensitiveService, service)
    service = SystemContext.of(ctx).service(SensitiveService)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backend.auth.lockout import Lockout
from backend.auth.passwords import Passwords
from backend.auth.sessions import SessionInfo
from backend.auth.tables import SESSIONS
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.mail.sealing import SecretSeal
from backend.sensitive import codes
from backend.sensitive.registry import EMPTY, SensitiveActions
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

if TYPE_CHECKING:
    from backend.sensitive.offers import VerificationMethod

Document = dict[str, Any]


_TOTP_SEAL = b"stepup/sensitive/totp-secret/v1"


class SensitiveService:
    """``origin`` is the site's public origin (``PUBLIC_URL``): passkeys are bound to it and
    to its host name, the WebAuthn relying party id."""

    def __init__(
        self,
        engine: Engine,
        secret: str,
        passwords: Passwords,
        *,
        methods: Sequence[VerificationMethod],
        origin: str = "http://localhost",
        site_name: str | None = None,
    ) -> None:
        self.engine = engine
        self._secret = secret.encode("utf-8")
        self.passwords = passwords
        # the verification methods, strongest first (``methods.METHODS``, handed in by the
        # assembly: the methods' own modules depend on this one)
        self.methods = tuple(methods)
        # The same failure records as password sign-in (backend/auth/lockout.py).
        self.lockout = Lockout(secret)
        # TOTP secrets are sealed as mail secrets are, under a key of their own.
        self.totp_seal = SecretSeal(secret, info=_TOTP_SEAL)
        self.origin = origin.rstrip("/")
        self.rp_id = urlsplit(self.origin).hostname or "localhost"
        self.site_name = site_name or self.rp_id
        self._registry: tuple[object, SensitiveActions] | None = None

    @property
    def registry(self) -> SensitiveActions:
        """The app's protected actions (its ``SensitiveActions``; none if it declares none)
        and the engine's own: every factor change (``changes.py``)."""
        from backend.sensitive.changes import BUILTIN_ACTIONS

        found = self.engine.app.extensions.get("sensitive_actions", EMPTY)
        app_actions = found if isinstance(found, SensitiveActions) else EMPTY
        if self._registry is None or self._registry[0] is not app_actions:
            self._registry = (app_actions, app_actions.with_builtins(BUILTIN_ACTIONS))
        return self._registry[1]

    def keyed(self, purpose: str, *parts: str) -> str:
        """A keyed hash of ``parts`` for ``purpose`` (a backup code, a challenge)."""
        message = "\x1f".join((purpose, *parts)).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

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
