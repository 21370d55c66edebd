"""Signing in with Google, Microsoft or any OpenID Connect provider.

The flow is the OIDC authorization code flow with PKCE (S256), in two halves that bracket the
user's visit to the provider:

``begin`` looks up the provider's discovery document, draws ``state``, ``nonce`` and a PKCE
``code_verifier`` from the runtime's random source, and answers the authorization URL together
with a ``PendingLogin``. The caller keeps the pending login on the server, keyed by ``state``,
and sends the browser to the URL. Nothing secret travels in the URL: the provider only sees the
*hash* of the verifier.

``finish`` runs when the browser comes back to the callback with ``code`` and ``state``. The
caller finds the pending login by ``state``; ``finish`` checks again that the two agree
(constant time), that the pending login is younger than ten minutes by the runtime clock, and
then redeems the code at the token endpoint, proving with the verifier that it is the party
that began. The ID token in the answer is trusted only after every check OIDC Core 3.1.3.7 asks
of a confidential client: the signature against the provider's published keys, ``iss``,
``aud`` (and ``azp``), ``exp`` / ``iat`` by the injected clock, and the ``nonce`` bound to this
login. Only then does its ``sub`` and ``email`` become a ``VerifiedProfile``.

Libraries. PyJWT verifies the ID token: it is the JWT library the rest of ``backend.auth``
already uses (``jwt.py``), it is typed, and ``PyJWK`` loads the provider's JWKS entries. Its
own time checks read the wall clock, so they are off and the runtime clock decides. The code
exchange is a single form POST made with the caller's ``httpx.AsyncClient`` rather than with
Authlib's ``AsyncOAuth2Client``: that client *is* its own ``httpx.AsyncClient`` (it cannot share
the caller's pool or transport), it draws ``state`` and verifiers from ``secrets`` behind the
runtime's back, and its errors carry the provider's free-text ``error_description``. The
protocol steps it would save are the twenty lines of ``_redeem``.

Caches. Discovery documents are kept for the life of the client (a provider's endpoints do not
move); a JWKS is kept until a token names a ``kid`` it lacks, which makes it refetch once (keys
rotate). Two concurrent first fetches may both go out; the second result simply wins.

Failures. Everything that can go wrong with a provider or a forged callback raises
``OAUTH_FAILED`` (the reason as its message) with a short fixed reason ("state mismatch", "wrong
audience", "token exchange failed: invalid_grant", ...). Codes, tokens, verifiers and secrets
never appear in a message, and ``PendingLogin``'s repr hides its secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import jwt as pyjwt

from backend.auth import jose
from backend.errors import ConvexError, ErrorCode
from backend.runtime import Runtime

PENDING_LOGIN_TTL = timedelta(minutes=10)
CLOCK_LEEWAY = timedelta(seconds=60)
DEFAULT_SCOPES = ("openid", "email", "profile")


# Asymmetric algorithms only, each tied to the one key type it fits: a token's header never
# chooses how a key is read (no "none", no HS256 keyed with a public key).
_KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}
# What an ID token's refusal says, by the step that refused it (``jose.py``).
_ID_TOKEN_REJECTIONS = {
    jose.Rejection.MALFORMED: "malformed id token",
    jose.Rejection.BAD_SIGNATURE: "bad id token signature",
    jose.Rejection.MISSING_CLAIM: "id token lacks a required claim",
    jose.Rejection.WRONG_ISSUER: "wrong issuer",
    jose.Rejection.WRONG_AUDIENCE: "wrong audience",
    jose.Rejection.EXPIRED: "id token expired",
    jose.Rejection.NOT_YET_VALID: "id token issued in the future",
}
_RANDOM_BYTES = 32  # 256 bits for state and nonce; the verifier becomes 43 characters
_HTTP_TIMEOUT = httpx.Timeout(10.0)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# Microsoft's multi-tenant discovery names its issuer with this placeholder for the tenant.
_TENANT_PLACEHOLDER = "{tenantid}"
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# RFC 6749 error codes are short ASCII words: safe to show, unlike error_description.
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")
_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # it becomes /callback/<id>
_TENANT = re.compile(r"[A-Za-z0-9.-]{1,128}")

GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
MICROSOFT_DISCOVERY_URL = (
    "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
)


@dataclass(frozen=True)
class ProviderConfig:
    """One identity provider. ``issuer`` is the issuer its discovery document must state;
    ``None`` trusts the document fetched from ``discovery_url`` (needed for Microsoft's
    templated issuer, and for presets pointed elsewhere). ``client_secret`` ``None`` makes a
    public client, authenticated by PKCE alone."""

    id: str
    client_id: str
    client_secret: str | None = field(repr=False)
    issuer: str | None
    discovery_url: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES


def providers_from_env(env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    """The providers the environment configures, by id.

    ``google``: ``GOOGLE_CLIENT_ID``, ``GOOGLE_CLIENT_SECRET``. ``microsoft``:
    ``MICROSOFT_CLIENT_ID``, ``MICROSOFT_CLIENT_SECRET``, ``MICROSOFT_TENANT_ID`` (default
    ``common``). A generic provider: ``OIDC_ISSUER``, ``OIDC_CLIENT_ID``, ``OIDC_CLIENT_SECRET``,
    named by ``OIDC_PROVIDER_ID`` (default ``oidc``). ``<PREFIX>_DISCOVERY_URL`` replaces any
    provider's discovery URL (a test provider on loopback). A provider without a client id is
    left out; empty values count as unset.

    Raises ``ValueError`` for a half-configured generic provider, a malformed tenant or
    provider id, or a generic provider id that collides with a preset.
    """
    providers: dict[str, ProviderConfig] = {}
    if client_id := _setting(env, "GOOGLE_CLIENT_ID"):
        override = _setting(env, "GOOGLE_DISCOVERY_URL")
        providers["google"] = ProviderConfig(
            id="google",
            client_id=client_id,
            client_secret=_setting(env, "GOOGLE_CLIENT_SECRET"),
            # Elsewhere, the issuer is whatever stands in for Google.
            issuer=None if override else GOOGLE_ISSUER,
            discovery_url=override or GOOGLE_DISCOVERY_URL,
        )
    if client_id := _setting(env, "MICROSOFT_CLIENT_ID"):
        tenant = _setting(env, "MICROSOFT_TENANT_ID") or "common"
        if not _TENANT.fullmatch(tenant):
            raise ValueError("MICROSOFT_TENANT_ID is a tenant GUID, domain or 'common'")
        providers["microsoft"] = ProviderConfig(
            id="microsoft",
            client_id=client_id,
            client_secret=_setting(env, "MICROSOFT_CLIENT_SECRET"),
            # "common" documents "https://login.microsoftonline.com/{tenantid}/v2.0": the
            # issuer is checked per token against its "tid" (see _expected_issuer).
            issuer=None,
            discovery_url=_setting(env, "MICROSOFT_DISCOVERY_URL")
            or MICROSOFT_DISCOVERY_URL.format(tenant=tenant),
        )
    issuer, client_id = _setting(env, "OIDC_ISSUER"), _setting(env, "OIDC_CLIENT_ID")
    if issuer or client_id:
        if not (issuer and client_id):
            raise ValueError("OIDC_ISSUER and OIDC_CLIENT_ID are set together or not at all")
        provider_id = _setting(env, "OIDC_PROVIDER_ID") or "oidc"
        if not _PROVIDER_ID.fullmatch(provider_id):
            raise ValueError("OIDC_PROVIDER_ID is lowercase letters, digits, '-' and '_'")
        if provider_id in providers:
            raise ValueError(f"OIDC_PROVIDER_ID {provider_id!r} is taken by a preset")
        providers[provider_id] = ProviderConfig(
            id=provider_id,
            client_id=client_id,
            client_secret=_setting(env, "OIDC_CLIENT_SECRET"),
            issuer=issuer,
            discovery_url=_setting(env, "OIDC_DISCOVERY_URL")
            or issuer.rstrip("/") + "/.well-known/openid-configuration",
        )
    return providers


@dataclass(frozen=True)
class PendingLogin:
    """A login between ``begin`` and ``finish``; the caller stores it server side by ``state``.

    The secrets are left out of the repr, so that logging one does not leak them."""

    provider: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_uri: str
    created_at: datetime


@dataclass(frozen=True)
class VerifiedProfile:
    """Who the provider vouches for. ``subject`` is stable per provider; ``email`` is only
    proven to belong to them when ``email_verified`` (Microsoft never says so)."""

    provider: str
    subject: str
    email: str
    email_verified: bool
    name: str | None
    picture: str | None


@dataclass(frozen=True)
class _Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth_methods: tuple[str, ...]


@dataclass(frozen=True)
class _Key:
    kid: str | None
    algorithm: str
    jwk: pyjwt.PyJWK


@dataclass(frozen=True)
class _Tokens:
    id_token: str
    access_token: str = field(repr=False)


class OAuthClient:
    """Begins and finishes OIDC logins with the configured providers.

    Uses ``http`` for every request when given (the caller closes it); otherwise it opens its
    own client, closed by ``aclose()`` or by leaving ``async with``.
    """

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        runtime: Runtime,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._runtime = runtime
        self._owns_http = http is None
        # httpx never follows redirects unless told: a token endpoint that redirects fails.
        self._http = http if http is not None else httpx.AsyncClient(timeout=_HTTP_TIMEOUT)
        self._discovery: dict[str, _Discovery] = {}
        self._jwks: dict[str, list[_Key]] = {}

    @property
    def providers(self) -> Mapping[str, ProviderConfig]:
        return self._providers

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> OAuthClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def begin(
        self, provider_id: str, redirect_uri: str, *, login_hint: str | None = None
    ) -> tuple[str, PendingLogin]:
        """The provider's authorization URL, and the pending login to keep until the callback.

        Raises ``PROVIDER_NOT_FOUND`` for a provider that is not configured and
        ``OAUTH_FAILED`` when its discovery document cannot be had.
        """
        provider = self._provider(provider_id)
        discovery = await self._discover(provider)
        pending = PendingLogin(
            provider=provider.id,
            state=self._random_token(),
            nonce=self._random_token(),
            code_verifier=self._random_token(),
            redirect_uri=redirect_uri,
            created_at=self._runtime.now(),
        )
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(provider.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": s256_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        return _with_query(discovery.authorization_endpoint, params), pending

    async def finish(self, pending: PendingLogin, *, code: str, state: str) -> VerifiedProfile:
        """Redeem the callback's ``code`` and answer the profile its ID token vouches for.

        Raises ``OAUTH_FAILED`` (the reason as its message) for a ``state`` that is not the pending
        login's, a pending login older than ten minutes, a refused code exchange, an ID token
        that fails any check, a provider that gives no email, or a provider that cannot be
        reached; ``PROVIDER_NOT_FOUND`` if the provider is no longer configured.
        """
        # Compare bytes: compare_digest refuses non-ASCII str, and state comes from a URL.
        if not hmac.compare_digest(pending.state.encode(), state.encode()):
            raise _failed("state mismatch")
        if self._runtime.now() - pending.created_at > PENDING_LOGIN_TTL:
            raise _failed("login expired")
        if not code:
            raise _failed("missing code")
        provider = self._provider(pending.provider)
        discovery = await self._discover(provider)
        tokens = await self._redeem(provider, discovery, pending, code)
        claims = await self._verify_id_token(provider, discovery, tokens.id_token, pending.nonce)
        if not jose.is_text(claims.get("email")) and discovery.userinfo_endpoint is not None:
            claims = await self._add_userinfo(discovery.userinfo_endpoint, tokens, claims)
        email = claims.get("email")
        if not jose.is_text(email):
            raise _failed("provider gave no email")
        verified = claims.get("email_verified")
        return VerifiedProfile(
            provider=provider.id,
            subject=claims["sub"],
            email=email,
            # Some providers send the string "true"; anything else is not a verification.
            email_verified=verified is True or verified == "true",
            name=claims.get("name") if jose.is_text(claims.get("name")) else None,
            picture=claims.get("picture") if jose.is_text(claims.get("picture")) else None,
        )

    # ---- internals ----------------------------------------------------------------------

    def _provider(self, provider_id: str) -> ProviderConfig:
        provider = self._providers.get(provider_id)
        if provider is None:
            raise ConvexError(
                ErrorCode.PROVIDER_NOT_FOUND, "No such sign-in provider", provider=provider_id
            )
        return provider

    def _random_token(self) -> str:
        return jose.b64url(self._runtime.random.token_bytes(_RANDOM_BYTES))

    async def _discover(self, provider: ProviderConfig) -> _Discovery:
        cached = self._discovery.get(provider.id)
        if cached is not None:
            return cached
        doc = await self._get_json(provider.discovery_url, "discovery")
        issuer = doc.get("issuer")
        if not jose.is_text(issuer):
            raise _failed("discovery document incomplete")
        # OIDC Discovery 4.3: the document must name the issuer it was fetched for.
        if provider.issuer is not None and issuer.rstrip("/") != provider.issuer.rstrip("/"):
            raise _failed("discovery issuer mismatch")
        # RFC 8414: a server that lists no methods supports client_secret_basic.
        methods = doc.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        userinfo = doc.get("userinfo_endpoint")
        discovery = _Discovery(
            issuer=issuer,
            authorization_endpoint=_endpoint(doc.get("authorization_endpoint")),
            token_endpoint=_endpoint(doc.get("token_endpoint")),
            jwks_uri=_endpoint(doc.get("jwks_uri")),
            userinfo_endpoint=None if userinfo is None else _endpoint(userinfo),
            token_auth_methods=tuple(m for m in methods if isinstance(m, str))
            if isinstance(methods, list)
            else (),
        )
        self._discovery[provider.id] = discovery
        return discovery

    async def _redeem(
        self, provider: ProviderConfig, discovery: _Discovery, pending: PendingLogin, code: str
    ) -> _Tokens:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
        }
        headers = {"Accept": "application/json"}
        secret = provider.client_secret
        if secret is None:
            form["client_id"] = provider.client_id  # a public client: PKCE is its proof
        elif "client_secret_basic" in discovery.token_auth_methods:
            # RFC 6749 2.3.1: both halves are form-encoded before they are joined.
            pair = f"{quote(provider.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif "client_secret_post" in discovery.token_auth_methods:
            form["client_id"], form["client_secret"] = provider.client_id, secret
        else:
            raise _failed("no supported client authentication method")
        try:
            response = await self._http.post(discovery.token_endpoint, data=form, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _failed("token endpoint unreachable") from exc
        body = _json_object(response)
        if response.status_code != 200:
            error = body.get("error") if body else None
            known = isinstance(error, str) and _OAUTH_ERROR.fullmatch(error)
            raise _failed(f"token exchange failed: {error}" if known else "token exchange failed")
        id_token, access_token = (body or {}).get("id_token"), (body or {}).get("access_token")
        token_type = (body or {}).get("token_type")
        if not (jose.is_text(id_token) and jose.is_text(access_token) and jose.is_text(token_type)):
            raise _failed("token response incomplete")
        if token_type.lower() != "bearer":
            raise _failed("unsupported token type")
        return _Tokens(id_token=id_token, access_token=access_token)

    async def _verify_id_token(
        self, provider: ProviderConfig, discovery: _Discovery, token: str, nonce: str
    ) -> dict[str, Any]:
        try:
            algorithm, kid = jose.unverified_header(token)
            if not isinstance(algorithm, str) or algorithm not in _KEY_TYPES:
                raise _failed("id token algorithm not allowed")
            key = await self._signing_key(
                discovery.jwks_uri, kid if jose.is_text(kid) else None, algorithm
            )
            # The issuer and audience are checked below: the issuer against Microsoft's
            # template, the audience with the authorized party.
            claims = jose.decode(
                token, key.jwk, key.algorithm, require=("iss", "sub", "aud", "exp", "iat")
            )
            self._check_claims(provider, discovery, claims, nonce)
        except jose.Rejected as rejected:
            raise _failed(_ID_TOKEN_REJECTIONS[rejected.reason]) from None
        return claims

    def _check_claims(
        self,
        provider: ProviderConfig,
        discovery: _Discovery,
        claims: Mapping[str, Any],
        nonce: str,
    ) -> None:
        if claims["iss"] != _expected_issuer(discovery.issuer, claims):
            raise _failed("wrong issuer")
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or provider.client_id not in audiences:
            raise _failed("wrong audience")
        # OIDC Core 3.1.3.7: with several audiences, the token must be meant for us (azp).
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
            raise _failed("wrong authorized party")
        subject = claims["sub"]
        if not jose.is_text(subject) or len(subject) > 255:
            raise _failed("malformed id token")
        jose.check_lifetime(claims, self._runtime.now().timestamp(), CLOCK_LEEWAY.total_seconds())
        token_nonce = claims.get("nonce")
        if not jose.is_text(token_nonce) or not hmac.compare_digest(
            token_nonce.encode(), nonce.encode()
        ):
            raise _failed("nonce mismatch")

    async def _signing_key(self, jwks_uri: str, kid: str | None, algorithm: str) -> _Key:
        cached = self._jwks.get(jwks_uri)
        key = _pick_key(cached or [], kid, algorithm)
        if key is None:
            # Unknown (or first) kid: the provider may have rotated. Refetch once, no more.
            keys = _parse_jwks(await self._get_json(jwks_uri, "jwks"))
            self._jwks[jwks_uri] = keys
            key = _pick_key(keys, kid, algorithm)
        if key is None:
            raise _failed("unknown signing key")
        return key

    async def _add_userinfo(
        self, endpoint: str, tokens: _Tokens, claims: dict[str, Any]
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"}
        info = await self._get_json(endpoint, "userinfo", headers=headers)
        # OIDC Core 5.3.2: userinfo for another subject must not be mixed in.
        if info.get("sub") != claims["sub"]:
            raise _failed("userinfo subject mismatch")
        merged = dict(claims)
        # email_verified speaks of the email beside it: take both from the same answer.
        merged["email"], merged["email_verified"] = info.get("email"), info.get("email_verified")
        for name in ("name", "picture"):
            if not jose.is_text(merged.get(name)):
                merged[name] = info.get(name)
        return merged

    async def _get_json(
        self, url: str, what: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        _endpoint(url)
        try:
            response = await self._http.get(url, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _failed(f"{what} unreachable") from exc
        body = _json_object(response)
        if response.status_code != 200 or body is None:
            raise _failed(f"{what} failed")
        return body


def s256_challenge(verifier: str) -> str:
    """The PKCE S256 ``code_challenge`` for ``verifier`` (RFC 7636 4.2)."""
    return jose.b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _expected_issuer(discovered: str, claims: Mapping[str, Any]) -> str:
    # Microsoft's "common" / "organizations" discovery answers an issuer template; a token is
    # valid when its iss is the template with the token's own tenant filled in. See
    # https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-the-issuer
    if _TENANT_PLACEHOLDER not in discovered:
        return discovered
    tenant = claims.get("tid")
    if not isinstance(tenant, str) or not _GUID.fullmatch(tenant):
        raise _failed("wrong issuer")
    return discovered.replace(_TENANT_PLACEHOLDER, tenant)


def _parse_jwks(doc: Mapping[str, Any]) -> list[_Key]:
    listed = doc.get("keys")
    if not isinstance(listed, list):
        raise _failed("jwks failed")
    keys = []
    for data in listed:
        # A key we cannot or must not use is skipped, not fatal: the others may still sign.
        if not isinstance(data, dict) or data.get("use", "sig") != "sig" or "d" in data:
            continue
        kty, crv = data.get("kty"), data.get("crv")
        algorithm = data.get("alg") or {"RSA": "RS256", "EC": "ES256"}.get(str(kty))
        if not isinstance(algorithm, str) or _KEY_TYPES.get(algorithm) != (kty, crv):
            continue
        try:
            jwk = jose.public_jwk(data, algorithm)
        except ValueError:
            continue
        kid = data.get("kid")
        keys.append(_Key(kid if isinstance(kid, str) else None, algorithm, jwk))
    return keys


def _pick_key(keys: list[_Key], kid: str | None, algorithm: str) -> _Key | None:
    fitting = [k for k in keys if k.algorithm == algorithm and (kid is None or k.kid == kid)]
    # Without a kid, only an unambiguous key will do.
    return fitting[0] if len(fitting) == 1 else None


def _endpoint(url: Any) -> str:
    # Tokens and codes only go over TLS, except to a provider on this machine (tests, dev).
    if not jose.is_text(url):
        raise _failed("discovery document incomplete")
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return url
    raise _failed("insecure provider endpoint")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    # An authorization endpoint may carry a query of its own (OAuth 2.0 3.1): keep it.
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _failed(reason: str) -> ConvexError:
    return ConvexError(ErrorCode.OAUTH_FAILED, reason)


def _setting(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


__all__ = [
    "CLOCK_LEEWAY",
    "PENDING_LOGIN_TTL",
    "OAuthClient",
    "PendingLogin",
    "ProviderConfig",
    "VerifiedProfile",
    "providers_from_env",
    "s256_challenge",
]
