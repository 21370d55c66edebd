"""Outside auth providers: JWTs from Clerk, Auth0, WorkOS, any OIDC issuer or custom issuer,
accepted beside the engine's own, configured as Convex's ``auth.config.ts`` configures them.

The app declares them in any module of its functions package (``functions/auth_config.py`` by
convention), in Convex's shapes::

    from backend import AuthProviders

    auth_config = AuthProviders([
        {"domain": "https://clerk.example.com", "applicationID": "convex"},       # OIDC
        {"type": "customJwt", "issuer": "https://issuer.example.com",
         "jwks": "https://issuer.example.com/.well-known/jwks.json",
         "algorithm": "RS256", "applicationID": "my-app"},                          # custom
    ])

A token is routed by its ``iss`` to the provider of that issuer (the engine's own tokens keep
their own check); one naming no configured issuer is refused. Then, as for the engine's own
tokens (``jwt.py``): the key is the one the token's ``kid`` names in the provider's JWKS, and the
algorithm is that key's, never what the header claims: ``alg: none``, HS256 signed with a
public key, or an algorithm the provider's keys do not use fail before any signature check.
``iss`` must be the provider's issuer exactly, ``aud`` must include ``applicationID`` (a custom
JWT provider without one checks no audience, as Convex's), ``exp`` / ``nbf`` / ``iat`` are
checked against the engine's clock with a 5 s leeway; ``sub`` is required.

Keys. An OIDC provider's keys come from its discovery document (``{domain}/.well-known/
openid-configuration``, whose ``issuer`` must be the domain, and its ``jwks_uri``); a custom
provider's from its ``jwks`` URL. Fetches have a timeout (5 s) and a size limit (256 KiB), go to
https only (plain http to loopback is allowed, for development and tests), and follow no
redirect. The keys are cached: a token whose ``kid`` is unknown makes the provider fetch again,
at most once per ``REFETCH_INTERVAL`` (a flood of made-up ``kid`` values costs one fetch per
interval, not one per token), and they are refreshed at least every ``MAX_KEY_AGE``. A fetch
that fails keeps the keys already known.

The identity a function sees is Convex's ``UserIdentity``: ``tokenIdentifier`` is
``issuer|subject``, and the token's standard claims (``email``, ``email_verified``, ``name``,
``picture``, ...) under Convex's names, custom claims as they are. No session is behind it: it
lasts as long as the token (the sync socket drops it when the token expires, as for any token).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import jwt as pyjwt

from backend.auth import jose
from backend.auth.jwt import MAX_TOKEN_BYTES, InvalidToken, JwtVerifier, VerificationKey
from backend.runtime import Clock
from backend.udf.context import Identity

log = logging.getLogger("backend.auth.providers")

FETCH_TIMEOUT: Final = 5.0  # seconds, connect and read alike
MAX_DOCUMENT_BYTES: Final = 256 * 1024
REFETCH_INTERVAL: Final = timedelta(seconds=30)
MAX_KEY_AGE: Final = timedelta(hours=1)
LEEWAY: Final = timedelta(seconds=5)
ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA"})
REQUIRED: Final = ("sub", "iss", "exp")


@dataclass(frozen=True)
class ProviderConfig:
    """One entry of ``AuthProviders``, checked: an OIDC issuer (``jwks`` is None: discovered)
    or a custom JWT issuer."""

    issuer: str
    application_id: str | None
    jwks: str | None = None
    algorithm: str | None = None

    @property
    def kind(self) -> str:
        return "oidc" if self.jwks is None else "customJwt"


class AuthProviders:
    """The app's outside auth providers, in the shapes of Convex's ``auth.config.ts``.

    Each entry is ``{"domain": ..., "applicationID": ...}`` (an OpenID Connect issuer) or
    ``{"type": "customJwt", "issuer": ..., "jwks": ..., "algorithm": "RS256" | "ES256",
    "applicationID"?: ...}``. Raises ``TypeError`` for an entry of neither shape.
    """

    __app_extension__ = "auth_providers"

    def __init__(self, providers: Iterable[Mapping[str, Any]]) -> None:
        self.providers: tuple[ProviderConfig, ...] = tuple(_config(p) for p in providers)
        issuers = [p.issuer.rstrip("/") for p in self.providers]
        if len(set(issuers)) != len(issuers):
            raise TypeError("AuthProviders: two providers name the same issuer")


def _config(entry: Mapping[str, Any]) -> ProviderConfig:
    if not isinstance(entry, Mapping):
        raise TypeError(f"AuthProviders: a provider is an object, not {entry!r}")
    application_id = entry.get("applicationID")
    if application_id is not None and not jose.is_text(application_id):
        raise TypeError("AuthProviders: applicationID must be a non-empty string")
    if entry.get("type") == "customJwt":
        issuer, jwks, algorithm = entry.get("issuer"), entry.get("jwks"), entry.get("algorithm")
        if not jose.is_text(issuer) or not jose.is_text(jwks):
            raise TypeError("AuthProviders: a customJwt provider needs issuer and jwks")
        if algorithm not in ("RS256", "ES256"):
            raise TypeError("AuthProviders: a customJwt provider's algorithm is RS256 or ES256")
        _check_url(jwks)
        return ProviderConfig(issuer, application_id, jwks, algorithm)
    domain = entry.get("domain")
    if not jose.is_text(domain) or application_id is None:
        raise TypeError(
            "AuthProviders: an OIDC provider needs domain and applicationID "
            '(or "type": "customJwt" with issuer, jwks and algorithm)'
        )
    _check_url(domain)
    return ProviderConfig(domain, application_id)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return
    raise TypeError(f"AuthProviders: {url!r} must be an https URL (http only to loopback)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FetchFailed(Exception):
    """A provider's discovery document or JWKS could not be had; the reason is safe to log."""


async def fetch_json(client: httpx.AsyncClient, url: str) -> Any:
    """GET ``url`` as JSON: 200 only, no redirect, at most ``MAX_DOCUMENT_BYTES``."""
    _check_url(url)
    try:
        async with client.stream("GET", url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                raise FetchFailed(f"{url} answered {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchFailed(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{url}: {type(exc).__name__}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise FetchFailed(f"{url} sent no JSON") from None


class ProviderKeys:
    """A provider's keys, fetched on demand (the key source of its ``JwtVerifier``)."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._keys: Mapping[str, VerificationKey] = MappingProxyType({})
        self.fetches = 0

    async def __call__(self) -> Mapping[str, VerificationKey]:
        self.fetches += 1
        try:
            self._keys = MappingProxyType(await self._fetch())
        except FetchFailed as failed:
            # keep what is known; the verifier asks again after its interval at the earliest
            log.warning("auth provider %s: %s", self.config.issuer, failed)
        return self._keys

    async def _fetch(self) -> dict[str, VerificationKey]:
        url = self.config.jwks
        if url is None:
            discovery = await fetch_json(
                self._client, f"{self.config.issuer.rstrip('/')}/.well-known/openid-configuration"
            )
            if not isinstance(discovery, dict):
                raise FetchFailed("the discovery document is not an object")
            if _same_issuer(discovery.get("issuer"), self.config.issuer) is False:
                raise FetchFailed("the discovery document names another issuer")
            url = discovery.get("jwks_uri")
            if not jose.is_text(url):
                raise FetchFailed("the discovery document names no jwks_uri")
        jwks = await fetch_json(self._client, url)
        listed = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(listed, list):
            raise FetchFailed("the JWKS is not an object with a keys list")
        keys: dict[str, VerificationKey] = {}
        for data in listed[:100]:
            key = self._key(data)
            if key is not None and key.kid not in keys:
                keys[key.kid] = key
        return keys

    def _key(self, data: Any) -> VerificationKey | None:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            return None
        entry = dict(data)
        # A JWKS often leaves ``alg`` out of RSA keys: OIDC's default is RS256; a custom
        # provider's keys are for its one algorithm, and a key naming another is skipped.
        wanted = self.config.algorithm or ("RS256" if entry.get("kty") == "RSA" else None)
        if "alg" not in entry and wanted is not None:
            entry["alg"] = wanted
        if self.config.algorithm is not None and entry.get("alg") != self.config.algorithm:
            return None
        try:
            return VerificationKey.from_jwk(entry)
        except ValueError as exc:
            log.warning("auth provider %s: a key is skipped: %s", self.config.issuer, exc)
            return None


class ProviderVerifier(JwtVerifier):
    """Checks one provider's tokens (see the module's docstring)."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient, clock: Clock) -> None:
        self.config = config
        self.keys = ProviderKeys(config, client)
        super().__init__(
            self.keys,
            issuer=config.issuer,
            audience=config.application_id,
            clock=clock,
            leeway=LEEWAY,
            refresh_interval=REFETCH_INTERVAL,
            max_age=MAX_KEY_AGE,
        )

    async def verify_identity(self, token: str) -> tuple[Identity, datetime]:
        """The caller a valid token names, and when the token expires; ``InvalidToken``
        otherwise."""
        try:
            # the issuer is compared here, not by the decoder: a trailing "/" may differ
            payload, now = await self._signed_payload(
                token, algorithms=ALGORITHMS, require=REQUIRED, issuer=None
            )
            subject, issuer = payload["sub"], payload["iss"]
            if not _same_issuer(issuer, self.config.issuer):
                raise InvalidToken("wrong issuer")
            if not jose.is_text(subject):
                raise InvalidToken("malformed")
            times = {**payload, "iat": payload.get("iat", payload.get("nbf", payload["exp"] - 1))}
            jose.check_lifetime(times, now.timestamp(), self._leeway, exp_after_iat=True)
        except jose.Rejected as rejected:
            raise InvalidToken(rejected.reason.value) from None
        identity = Identity(
            subject=subject,
            issuer=issuer,
            claims=MappingProxyType(_claims(payload)),
            external=True,
        )
        return identity, datetime.fromtimestamp(payload["exp"], UTC)


# The JWT's own registered claims: not part of the identity a function sees.
_REGISTERED: Final = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "nonce"})


def _claims(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in _REGISTERED and isinstance(k, str)}


def _same_issuer(claimed: Any, configured: str) -> bool:
    """The issuer as configured, give or take a trailing slash (Auth0 writes one)."""
    return isinstance(claimed, str) and claimed.rstrip("/") == configured.rstrip("/")


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims (nothing checked): which verifier should look at it."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not token.isascii():
        return None
    try:
        payload = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError:
        return None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None


class ProviderSet:
    """Every configured provider's verifier, by issuer, sharing one HTTP client."""

    def __init__(
        self, configs: Sequence[ProviderConfig], clock: Clock, *, timeout: float = FETCH_TIMEOUT
    ) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
        )
        self.verifiers = {
            c.issuer.rstrip("/"): ProviderVerifier(c, self._client, clock) for c in configs
        }

    def for_issuer(self, issuer: str | None) -> ProviderVerifier | None:
        return self.verifiers.get(issuer.rstrip("/")) if issuer else None

    async def close(self) -> None:
        await self._client.aclose()


def providers_of(extensions: Mapping[str, Any]) -> tuple[ProviderConfig, ...]:
    """The providers an app declares (its ``AuthProviders``), or none."""
    declared = extensions.get(AuthProviders.__app_extension__)
    return declared.providers if isinstance(declared, AuthProviders) else ()


__all__ = [
    "ALGORITHMS",
    "AuthProviders",
    "FetchFailed",
    "ProviderConfig",
    "ProviderSet",
    "ProviderVerifier",
    "fetch_json",
    "providers_of",
    "unverified_issuer",
]
