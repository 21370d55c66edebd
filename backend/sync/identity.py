"""How a connection proves who it is: a token, checked by a pluggable verifier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from backend.udf.context import Identity


class TokenRejected(Exception):
    """The token is not acceptable; ``reason`` is safe to show the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    identity: Identity
    expires_at: datetime | None


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> VerifiedToken:
        """Check a token; raise ``TokenRejected`` when it is bad, expired or unknown."""
        ...
