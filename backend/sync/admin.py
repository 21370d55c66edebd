"""The admin key: what the dashboard presents (Convex's ``setAdminAuth``) to reach the
engine's internal functions and the dashboard's own.

A connection that sends ``Authenticate {tokenType: "Admin", value}`` with the configured key
is the admin: its caller is ``ADMIN``, the one identity no token can produce (it is this very
object, compared by ``is``, never a subject or an issuer a token could claim), and it may call
internal functions. Inside a function the admin is nobody (``ctx.auth`` finds no session), so
running an app function as the admin runs it as an anonymous caller. Without a configured key
(``ADMIN_KEY``; in dev one derived from ``SECRET_KEY``) every admin token is refused.
"""

from __future__ import annotations

import hashlib
import hmac

from backend.udf.context import Identity

ADMIN = Identity(subject="_admin", issuer="admin key")
"""The admin's identity (a connection authenticated with the admin key)."""


def is_admin(identity: Identity | None) -> bool:
    return identity is ADMIN


class AdminKey:
    """The configured admin key (an engine service); compared in constant time."""

    def __init__(self, key: str) -> None:
        if len(key) < 32:
            raise ValueError("an admin key has at least 32 characters")
        self._digest = hashlib.sha256(key.encode()).digest()

    def matches(self, presented: str | None) -> bool:
        if not presented or len(presented) > 1024:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)
