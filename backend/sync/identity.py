"""How a connection proves who it is: a token, checked by a pluggable verifier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from backend.udf.context import Identity

NO_TOKENS = "This server does not accept tokens"
"""What a caller presenting a token is told by a server that checks none."""


class TokenRejected(Exception):
    """The token is not acceptable; ``reason`` is safe to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        """What the caller is told, on the socket (``AuthError``) and over HTTP (``401
        UNAUTHENTICATED``) alike."""
        return f"Invalid token: {self.reason}"


@dataclass(frozen=True)
class VerifiedToken:
    identity: Identity
    expires_at: datetime | None


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> VerifiedToken:
        """Check a token; raise ``TokenRejected`` when it is bad, expired or unknown."""
        ...
