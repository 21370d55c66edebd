"""The sync layer's token check, backed by the key ring's JWT verifier."""

from __future__ import annotations

from backend.auth.jwt import InvalidToken, JwtVerifier
from backend.auth.providers import ProviderSet, unverified_issuer
from backend.sync.identity import TokenRejected, VerifiedToken


class ConvexTokenVerifier:
    """Verifies the JWTs minted by ``/api/auth/convex/token`` for ``Authenticate`` and Bearer
    calls. Whether the session behind a token is still alive is checked later, inside each
    transaction (``sessions.resolve_identity``), so that a revocation takes effect at once.

    With ``providers`` (the app's ``AuthProviders``), a token whose ``iss`` names one of them
    is checked by that provider's verifier instead (``auth/providers.py``); any other token is
    checked as the engine's own."""

    def __init__(self, verifier: JwtVerifier, providers: ProviderSet | None = None) -> None:
        self._verifier = verifier
        self._providers = providers

    async def verify(self, token: str) -> VerifiedToken:
        try:
            if self._providers is not None:
                provider = self._providers.for_issuer(unverified_issuer(token))
                if provider is not None:
                    identity, expires_at = await provider.verify_identity(token)
                    return VerifiedToken(identity, expires_at)
            claims = await self._verifier.verify(token)
        except InvalidToken as error:
            raise TokenRejected(error.reason) from None
        return VerifiedToken(claims.identity(), claims.expires_at)
