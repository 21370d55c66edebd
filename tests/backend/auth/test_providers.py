"""Outside auth providers (``AuthProviders``, Convex's ``auth.config.ts``): tokens from a real
OIDC provider on loopback, its keys fetched by discovery and cached with a bounded refetch, and
every way an attacker's token must fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from backend import AuthProviders
from backend.auth.jwt import JwtVerifier
from backend.auth.providers import MAX_DOCUMENT_BYTES, ProviderSet
from backend.auth.verifier import ConvexTokenVerifier
from backend.errors import ConvexError
from backend.runtime import FakeClock, SystemClock
from backend.sync.identity import TokenRejected
from backend.testing import Caller, TestBackend
from tests.conftest import basic_app
from tests.support.live_server import live_server
from tests.support.oidc_provider import OidcProvider, TestUser, run_oidc_provider

AUDIENCE = "convex"


@pytest.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    users = {"ada": TestUser("user_ada", "ada@example.com", name="Ada")}
    async with run_oidc_provider(users, client_id=AUDIENCE) as running:
        yield running


def _verifier(providers: ProviderSet) -> ConvexTokenVerifier:
    own = JwtVerifier.from_jwks(
        {"keys": []}, issuer="http://ours.example", audience="ours", clock=SystemClock()
    )
    return ConvexTokenVerifier(own, providers)


def _oidc(provider: OidcProvider, **extra: Any) -> ProviderSet:
    config = AuthProviders([{"domain": provider.issuer, "applicationID": AUDIENCE, **extra}])
    return ProviderSet(config.providers, SystemClock(), timeout=1.0)


async def _refused(verifier: ConvexTokenVerifier, token: str) -> str:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token)
    assert token not in info.value.message
    return info.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any], key: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    signature = hmac.new(key, head.encode(), hashlib.sha256).digest() if key else b""
    return head + "." + _b64(signature)


async def test_an_oidc_providers_token_is_the_identity_functions_see(
    provider: OidcProvider, database_url: str | None
) -> None:
    providers = _oidc(provider)
    try:
        token = provider.mint(
            "user_ada",
            email="ada@example.com",
            email_verified=True,
            name="Ada",
            picture="https://img.example/ada.png",
            org_role="admin",
        )
        verified = await _verifier(providers).verify(token)
    finally:
        await providers.close()
    identity = verified.identity
    assert identity.token_identifier == f"{provider.issuer}|user_ada"
    assert identity.session_id is None
    assert verified.expires_at is not None
    async with TestBackend(database_url, app=basic_app()) as t:
        seen = await Caller(t, identity).query("whoami:identity", {})
        # no session of ours is behind it: step-up verification cannot be satisfied by it
        with pytest.raises(ConvexError) as refused:
            await Caller(t, identity).mutation("protected:poke", {"name": "x"})
        assert refused.value.code == "UNAUTHENTICATED"
    assert seen == {
        "tokenIdentifier": f"{provider.issuer}|user_ada",
        "subject": "user_ada",
        "issuer": provider.issuer,
        "email": "ada@example.com",
        "emailVerified": True,
        "name": "Ada",
        "pictureUrl": "https://img.example/ada.png",
        "org_role": "admin",
    }


async def test_a_custom_jwt_provider_uses_its_jwks_and_algorithm(provider: OidcProvider) -> None:
    config = AuthProviders(
        [
            {
                "type": "customJwt",
                "issuer": provider.issuer,
                "jwks": f"{provider.base_url}/jwks",
                "algorithm": "RS256",
            }
        ]
    )
    providers = ProviderSet(config.providers, SystemClock())
    try:
        verifier = _verifier(providers)
        # no applicationID: any audience, as Convex's customJwt without one
        verified = await verifier.verify(provider.mint("svc", audience="anything"))
        assert verified.identity.subject == "svc"
        assert provider.requests["/.well-known/openid-configuration"] == 0
    finally:
        await providers.close()


async def test_forged_wrong_issuer_wrong_audience_and_expired_tokens_fail(
    provider: OidcProvider,
) -> None:
    providers = _oidc(provider)
    try:
        verifier = _verifier(providers)
        assert await _refused(verifier, provider.mint("u", forged=True)) == "bad signature"
        assert await _refused(verifier, provider.mint("u", audience="other")) == "wrong audience"
        expired = provider.mint("u", lifetime=timedelta(minutes=1), issued_ago=timedelta(hours=1))
        assert await _refused(verifier, expired) == "expired"
        early = provider.mint("u", nbf=int(SystemClock().now().timestamp()) + 600)
        assert await _refused(verifier, early) == "not yet valid"
        # an issuer nobody configured goes to the engine's own check, which refuses it
        other = _unsigned({"alg": "RS256", "kid": "k"}, {"iss": "https://evil.example", "sub": "u"})
        assert await _refused(verifier, other) in ("unknown key", "bad signature")
        # inside the leeway an expiry still holds
        fresh = provider.mint("u", lifetime=timedelta(hours=1))
        assert (await verifier.verify(fresh)).identity.subject == "u"
    finally:
        await providers.close()


async def test_alg_none_and_hmac_with_the_public_key_fail_before_any_signature_check(
    provider: OidcProvider,
) -> None:
    providers = _oidc(provider)
    try:
        verifier = _verifier(providers)
        now = int(SystemClock().now().timestamp())
        claims = {"iss": provider.issuer, "sub": "u", "aud": AUDIENCE, "iat": now, "exp": now + 60}
        kid = provider.public_jwk()["kid"]
        assert await _refused(verifier, _unsigned({"alg": "none", "kid": kid}, claims)) == (
            "bad signature"
        )
        public_pem = json.dumps(provider.public_jwk()).encode()  # the key anyone can fetch
        confused = _unsigned({"alg": "HS256", "kid": kid}, claims, key=public_pem)
        assert await _refused(verifier, confused) == "bad signature"
        es = _unsigned({"alg": "ES256", "kid": kid}, claims, key=b"x")  # not this key's alg
        assert await _refused(verifier, es) == "bad signature"
        assert await _refused(verifier, "not.a.jwt") in ("malformed", "bad signature")
        assert await _refused(verifier, "x" * 20_000) == "malformed"
    finally:
        await providers.close()


async def test_a_kid_flood_costs_one_fetch_per_interval_and_rotation_is_picked_up(
    provider: OidcProvider,
) -> None:
    clock = FakeClock()
    provider.clock = clock
    config = AuthProviders([{"domain": provider.issuer, "applicationID": AUDIENCE}])
    providers = ProviderSet(config.providers, clock)
    try:
        verifier = _verifier(providers)
        assert (await verifier.verify(provider.mint("u"))).identity.subject == "u"
        assert provider.requests["/jwks"] == 1
        clock.advance(seconds=31)
        for _ in range(50):
            token = provider.mint("u", kid=secrets.token_hex(8))
            assert await _refused(verifier, token) == "unknown key"
        assert provider.requests["/jwks"] == 2  # one refetch for the first unknown kid, no more
        provider.rotate_key()
        rotated = provider.mint("u")
        assert await _refused(verifier, rotated) == "unknown key"  # still inside the interval
        clock.advance(seconds=31)
        rotated = provider.mint("u")
        assert (await verifier.verify(rotated)).identity.subject == "u"
        assert provider.requests["/jwks"] == 3
    finally:
        await providers.close()


async def test_a_slow_or_oversized_jwks_is_not_taken(provider: OidcProvider) -> None:
    provider.jwks_delay = 3.0
    providers = _oidc(provider)  # a 1 s fetch timeout
    try:
        assert await _refused(_verifier(providers), provider.mint("u")) == "unknown key"
    finally:
        await providers.close()
    provider.jwks_delay = 0.0
    provider.jwks_padding = MAX_DOCUMENT_BYTES // 300  # each key is ~400 bytes
    providers = _oidc(provider)
    try:
        assert await _refused(_verifier(providers), provider.mint("u")) == "unknown key"
    finally:
        await providers.close()


async def test_a_discovery_document_naming_another_issuer_is_refused(
    provider: OidcProvider,
) -> None:
    config = AuthProviders([{"domain": provider.base_url + "/", "applicationID": AUDIENCE}])
    providers = ProviderSet(config.providers, SystemClock())
    try:
        # a trailing slash is the same issuer
        assert (await _verifier(providers).verify(provider.mint("u"))).identity.subject == "u"
    finally:
        await providers.close()
    provider.tenant_id = "tenant"  # discovery now names "{base}/{tenantid}/v2.0"
    providers = _oidc(provider)
    try:
        token = provider.mint("u", iss=provider.base_url)
        assert await _refused(_verifier(providers), token) in ("unknown key", "wrong issuer")
    finally:
        await providers.close()


@pytest.mark.parametrize(
    "entry",
    [
        {"domain": "ftp://x.example", "applicationID": "a"},
        {"domain": "http://x.example", "applicationID": "a"},  # plain http off loopback
        {"domain": "https://x.example"},  # no applicationID
        {"type": "customJwt", "issuer": "https://x", "jwks": "https://x/j", "algorithm": "HS256"},
        {"type": "customJwt", "issuer": "https://x", "algorithm": "RS256"},
        "https://x.example",
    ],
)
def test_a_misconfigured_provider_fails_at_load(entry: Any) -> None:
    with pytest.raises(TypeError):
        AuthProviders([entry])


async def test_a_providers_token_as_a_bearer_over_the_http_api(
    provider: OidcProvider, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's own ``auth_config.py`` (``tests/apps/outside_auth``) names the provider; the
    server routes a Bearer token by its issuer."""
    monkeypatch.setenv("OUTSIDE_AUTH_ISSUER", provider.issuer)
    from tests.apps.outside_auth.functions import auth_config

    importlib.reload(auth_config)  # the issuer is read when the module loads
    async with live_server(
        database_url,
        schema_module="tests.apps.outside_auth.schema",
        functions_package="tests.apps.outside_auth.functions",
    ) as server:
        provider.clock = server.clock
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

            async def call(kind: str, path: str, token: str, **args: Any) -> httpx.Response:
                return await http.post(
                    f"/api/{kind}",
                    json={"path": path, "args": [args], "format": "convex_encoded_json"},
                    headers={"authorization": f"Bearer {token}"},
                )

            good = provider.mint("user_http", email="h@example.com")
            answer = await call("mutation", "notes:add", good, body="over http")
            assert answer.status_code == 200, answer.text
            mine = (await call("query", "notes:mine", good)).json()
            assert mine["value"] == ["over http"]
            me = (await call("query", "notes:me", good)).json()["value"]
            assert me["tokenIdentifier"] == f"{provider.issuer}|user_http"
            for bad in (
                provider.mint("user_http", forged=True),
                provider.mint("user_http", audience="someone-else"),
            ):
                refused = await call("query", "notes:me", bad)
                assert refused.status_code == 401
                assert refused.json()["code"] == "UNAUTHENTICATED"
                assert bad not in refused.text
