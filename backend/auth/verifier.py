"""The sync layer's token check, backed by the key ring's JWT verifier."""

from __future__ import annotations

from backend.auth.jwt import InvalidToken, JwtVerifier
from backend.sync.identity import TokenRejected, VerifiedToken


class ConvexTokenVerifier:
    """Verifies the JWTs minted by ``/api/auth/convex/token`` for ``Authenticate`` and Bearer
    calls. Whether the session behind a token is still alive is checked later, inside each
    transaction (``sessions.resolve_identity``), so that a revocation takes effect at once."""

    def __init__(self, verifier: JwtVerifier) -> None:
        self._verifier = verifier

    async def verify(self, token: str) -> VerifiedToken:
        try:
            claims = await self._verifier.verify(token)
        except InvalidToken as error:
            raise TokenRejected(error.reason) from None
        return VerifiedToken(claims.identity(), claims.expires_at)
