"""OIDC sign-in against a real provider on 127.0.0.1, over real HTTP and real redirects."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest

from backend.auth.oauth import (
    GOOGLE_DISCOVERY_URL,
    GOOGLE_ISSUER,
    OAuthClient,
    PendingLogin,
    ProviderConfig,
    providers_from_env,
    s256_challenge,
)
from backend.errors import ConvexError
from backend.runtime import FakeClock, Runtime
from tests.support.oidc_provider import (
    CLIENT_SECRET,
    REDIRECT_URI,
    Misbehaviour,
    OidcProvider,
    TestUser,
    run_oidc_provider,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
TENANT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
USERS = {
    "alice": TestUser("alice-sub", "alice@example.com", True, "Alice Liddell"),
    "bob": TestUser("bob-sub", "bob@example.com", False, None),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def provider(clock: FakeClock) -> AsyncIterator[OidcProvider]:
    async with run_oidc_provider(USERS, clock=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def google_env(provider: OidcProvider, secret: str | None = CLIENT_SECRET) -> dict[str, str]:
    env = {"GOOGLE_CLIENT_ID": provider.client_id, "GOOGLE_DISCOVERY_URL": provider.discovery_url}
    return env | ({"GOOGLE_CLIENT_SECRET": secret} if secret else {})


@pytest.fixture
def oauth(provider: OidcProvider, clock: FakeClock, http: httpx.AsyncClient) -> OAuthClient:
    return OAuthClient(providers_from_env(google_env(provider)), Runtime(clock=clock), http)


async def authorize(http: httpx.AsyncClient, url: str) -> tuple[str, str]:
    """Visit the authorization URL as the browser would; answer the callback's code and state."""
    response = await http.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = dict(parse_qsl(urlsplit(location).query))
    assert "error" not in query, query
    return query["code"], query["state"]


async def begin_and_authorize(
    oauth: OAuthClient, http: httpx.AsyncClient, user: str = "alice"
) -> tuple[PendingLogin, str, str]:
    url, pending = await oauth.begin("google", REDIRECT_URI, login_hint=user)
    code, state = await authorize(http, url)
    return pending, code, state


async def sign_in_fails(
    oauth: OAuthClient, pending: PendingLogin, code: str, state: str, reason: str
) -> None:
    with pytest.raises(ConvexError) as caught:
        await oauth.finish(pending, code=code, state=state)
    assert caught.value.data == {"code": "OAUTH_FAILED", "message": reason}
    for secret in (code, pending.code_verifier, pending.nonce, CLIENT_SECRET):
        assert secret not in str(caught.value.data)


# ---- the flow ---------------------------------------------------------------------------


async def test_sign_in_returns_the_profile_the_id_token_vouches_for(
    oauth: OAuthClient, http: httpx.AsyncClient, clock: FakeClock, provider: OidcProvider
) -> None:
    url, pending = await oauth.begin("google", REDIRECT_URI, login_hint="alice")

    assert url.startswith(f"{provider.base_url}/authorize?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params == {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": s256_challenge(pending.code_verifier),
        "code_challenge_method": "S256",
        "login_hint": "alice",
    }
    assert (pending.provider, pending.redirect_uri, pending.created_at) == (
        "google",
        REDIRECT_URI,
        clock.now(),
    )
    assert min(len(pending.state), len(pending.nonce), len(pending.code_verifier)) >= 43
    assert pending.state not in repr(pending)
    assert pending.code_verifier not in repr(pending)

    code, state = await authorize(http, url)
    assert state == pending.state
    clock.advance(minutes=9)  # the user took a while at the provider: still in time
    profile = await oauth.finish(pending, code=code, state=state)

    assert dataclasses.asdict(profile) == {
        "provider": "google",
        "subject": "alice-sub",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Liddell",
        "picture": None,
    }
    assert provider.token_auth_used == ["client_secret_basic"]
    assert provider.requests["/userinfo"] == 0  # the ID token had the email


class CountingRandom:
    """A random source whose n-th call answers n bytes of value n."""

    def __init__(self) -> None:
        self.calls = 0

    def token_bytes(self, n: int) -> bytes:
        self.calls += 1
        return bytes([self.calls]) * n

    def randbelow(self, n: int) -> int:
        return 0


async def test_state_nonce_and_verifier_come_from_the_runtime_random_source(
    provider: OidcProvider, clock: FakeClock, http: httpx.AsyncClient
) -> None:
    runtime = Runtime(clock=clock, random=CountingRandom())
    oauth = OAuthClient(providers_from_env(google_env(provider)), runtime, http)

    _, pending = await oauth.begin("google", REDIRECT_URI)

    drawn = [base64.urlsafe_b64encode(bytes([i]) * 32).rstrip(b"=").decode() for i in (1, 2, 3)]
    assert [pending.state, pending.nonce, pending.code_verifier] == drawn


async def test_next_user_signs_in_without_a_login_hint_and_unverified_email_says_so(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    provider.next_user = "bob"
    url, pending = await oauth.begin("google", REDIRECT_URI)
    code, state = await authorize(http, url)

    profile = await oauth.finish(pending, code=code, state=state)

    assert (profile.subject, profile.email, profile.email_verified, profile.name) == (
        "bob-sub",
        "bob@example.com",
        False,
        None,
    )


async def test_email_comes_from_userinfo_when_the_id_token_lacks_it(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    provider.email_in_id_token = False
    pending, code, state = await begin_and_authorize(oauth, http)

    profile = await oauth.finish(pending, code=code, state=state)

    assert (profile.email, profile.email_verified, profile.name) == (
        "alice@example.com",
        True,
        "Alice Liddell",
    )
    assert provider.requests["/userinfo"] == 1


async def test_client_secret_post_is_used_when_basic_is_not_offered(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    provider.token_auth_methods = ("client_secret_post",)
    pending, code, state = await begin_and_authorize(oauth, http)

    await oauth.finish(pending, code=code, state=state)

    assert provider.token_auth_used == ["client_secret_post"]


async def test_a_public_client_proves_itself_by_pkce_alone(
    clock: FakeClock, http: httpx.AsyncClient
) -> None:
    async with run_oidc_provider(USERS, client_secret=None, clock=clock) as provider:
        oauth = OAuthClient(providers_from_env(google_env(provider, None)), Runtime(clock), http)
        pending, code, state = await begin_and_authorize(oauth, http)

        profile = await oauth.finish(pending, code=code, state=state)

        assert profile.subject == "alice-sub"
        assert provider.token_auth_used == ["none"]


async def test_discovery_and_keys_are_cached_and_keys_refetched_once_after_rotation(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    for _ in range(2):
        pending, code, state = await begin_and_authorize(oauth, http)
        await oauth.finish(pending, code=code, state=state)
    assert (provider.requests["/.well-known/openid-configuration"], provider.requests["/jwks"]) == (
        1,
        1,
    )

    provider.rotate_key()
    pending, code, state = await begin_and_authorize(oauth, http)
    await oauth.finish(pending, code=code, state=state)

    assert provider.requests["/jwks"] == 2


async def test_an_owned_http_client_is_closed_by_leaving_the_block(
    provider: OidcProvider, clock: FakeClock, http: httpx.AsyncClient
) -> None:
    async with OAuthClient(providers_from_env(google_env(provider)), Runtime(clock)) as oauth:
        pending, code, state = await begin_and_authorize(oauth, http)
        assert (await oauth.finish(pending, code=code, state=state)).subject == "alice-sub"


async def test_microsoft_issuer_template_is_filled_with_the_tokens_tenant(
    clock: FakeClock, http: httpx.AsyncClient
) -> None:
    async with run_oidc_provider(USERS, clock=clock, tenant_id=TENANT) as provider:
        env = {
            "MICROSOFT_CLIENT_ID": provider.client_id,
            "MICROSOFT_CLIENT_SECRET": CLIENT_SECRET,
            "MICROSOFT_DISCOVERY_URL": provider.discovery_url,
        }
        oauth = OAuthClient(providers_from_env(env), Runtime(clock), http)
        assert "{tenantid}" in provider.issuer

        url, pending = await oauth.begin("microsoft", REDIRECT_URI, login_hint="alice")
        code, state = await authorize(http, url)
        assert (await oauth.finish(pending, code=code, state=state)).subject == "alice-sub"

        provider.misbehaviours.add(Misbehaviour.WRONG_ISSUER)
        url, pending = await oauth.begin("microsoft", REDIRECT_URI, login_hint="alice")
        code, state = await authorize(http, url)
        await sign_in_fails(oauth, pending, code, state, "wrong issuer")


# ---- refusals ---------------------------------------------------------------------------


async def test_a_tampered_state_is_refused_before_the_code_is_spent(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    pending, code, state = await begin_and_authorize(oauth, http)

    await sign_in_fails(oauth, pending, code, state[:-1] + "x", "state mismatch")
    await sign_in_fails(oauth, pending, code, "é", "state mismatch")
    assert provider.requests["/token"] == 0


async def test_a_code_redeems_once(oauth: OAuthClient, http: httpx.AsyncClient) -> None:
    pending, code, state = await begin_and_authorize(oauth, http)
    await oauth.finish(pending, code=code, state=state)

    await sign_in_fails(oauth, pending, code, state, "token exchange failed: invalid_grant")


async def test_a_code_without_its_pkce_verifier_is_refused(
    oauth: OAuthClient, http: httpx.AsyncClient
) -> None:
    pending, code, state = await begin_and_authorize(oauth, http)
    # An attacker who stole the code has their own login, so their own verifier.
    _, other = await oauth.begin("google", REDIRECT_URI)
    forged = dataclasses.replace(pending, code_verifier=other.code_verifier)

    await sign_in_fails(oauth, forged, code, state, "token exchange failed: invalid_grant")


@pytest.mark.parametrize(
    ("misbehaviour", "reason"),
    [
        (Misbehaviour.WRONG_NONCE, "nonce mismatch"),
        (Misbehaviour.WRONG_AUDIENCE, "wrong audience"),
        (Misbehaviour.WRONG_ISSUER, "wrong issuer"),
        (Misbehaviour.EXPIRED_ID_TOKEN, "id token expired"),
        (Misbehaviour.BAD_SIGNATURE, "bad id token signature"),
    ],
)
async def test_an_id_token_failing_a_check_is_refused(
    oauth: OAuthClient,
    http: httpx.AsyncClient,
    provider: OidcProvider,
    misbehaviour: Misbehaviour,
    reason: str,
) -> None:
    provider.misbehaviours.add(misbehaviour)
    pending, code, state = await begin_and_authorize(oauth, http)

    await sign_in_fails(oauth, pending, code, state, reason)


@pytest.mark.parametrize(
    ("waited", "reason"),
    [
        (timedelta(minutes=5, seconds=59), None),  # past exp, within the 60 s leeway
        (timedelta(minutes=6), "id token expired"),
    ],
)
async def test_id_token_expiry_follows_the_runtime_clock_with_leeway(
    oauth: OAuthClient,
    http: httpx.AsyncClient,
    provider: OidcProvider,
    clock: FakeClock,
    waited: timedelta,
    reason: str | None,
) -> None:
    # The provider's clock stays behind: its tokens look old by the time they arrive.
    provider.clock = FakeClock(clock.now())
    provider.id_token_lifetime = timedelta(minutes=5)
    pending, code, state = await begin_and_authorize(oauth, http)
    clock.advance(waited)

    if reason is None:
        assert (await oauth.finish(pending, code=code, state=state)).subject == "alice-sub"
    else:
        await sign_in_fails(oauth, pending, code, state, reason)


async def test_an_id_token_from_the_future_is_refused(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider, clock: FakeClock
) -> None:
    provider.clock = FakeClock(clock.now() + timedelta(minutes=2))
    pending, code, state = await begin_and_authorize(oauth, http)

    await sign_in_fails(oauth, pending, code, state, "id token issued in the future")


async def test_a_pending_login_older_than_ten_minutes_is_refused(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider, clock: FakeClock
) -> None:
    pending, code, state = await begin_and_authorize(oauth, http)
    clock.advance(minutes=10, seconds=1)

    await sign_in_fails(oauth, pending, code, state, "login expired")
    assert provider.requests["/token"] == 0


async def test_an_unknown_provider_is_not_found(oauth: OAuthClient) -> None:
    with pytest.raises(ConvexError) as caught:
        await oauth.begin("myspace", REDIRECT_URI)

    assert caught.value.code == "PROVIDER_NOT_FOUND"


async def test_a_discovery_document_for_another_issuer_is_refused(
    provider: OidcProvider, clock: FakeClock, http: httpx.AsyncClient
) -> None:
    env = {
        "OIDC_ISSUER": "https://login.example",
        "OIDC_CLIENT_ID": provider.client_id,
        "OIDC_DISCOVERY_URL": provider.discovery_url,
    }
    oauth = OAuthClient(providers_from_env(env), Runtime(clock), http)

    with pytest.raises(ConvexError) as caught:
        await oauth.begin("oidc", REDIRECT_URI)

    assert caught.value.data == {"code": "OAUTH_FAILED", "message": "discovery issuer mismatch"}


async def test_plain_http_to_a_provider_off_this_machine_is_refused(clock: FakeClock) -> None:
    env = {"OIDC_ISSUER": "http://login.example", "OIDC_CLIENT_ID": "app"}
    async with OAuthClient(providers_from_env(env), Runtime(clock)) as oauth:
        with pytest.raises(ConvexError) as caught:
            await oauth.begin("oidc", REDIRECT_URI)

    assert caught.value.data == {"code": "OAUTH_FAILED", "message": "insecure provider endpoint"}


async def test_the_test_provider_refuses_what_a_real_one_would(
    oauth: OAuthClient, http: httpx.AsyncClient, provider: OidcProvider
) -> None:
    url, _ = await oauth.begin("google", REDIRECT_URI, login_hint="alice")

    elsewhere = url.replace("app.example", "evil.example")
    assert (await http.get(elsewhere)).status_code == 400  # never redirects to it
    no_pkce = url.replace("code_challenge_method=S256", "code_challenge_method=plain")
    location = (await http.get(no_pkce)).headers["location"]
    assert "error=invalid_request" in location
    nobody = url.replace("login_hint=alice", "login_hint=mallory")
    assert "error=login_required" in (await http.get(nobody)).headers["location"]


# ---- configuration ----------------------------------------------------------------------


def test_providers_from_env_builds_the_presets() -> None:
    env = {
        "GOOGLE_CLIENT_ID": "g-id",
        "GOOGLE_CLIENT_SECRET": "g-secret",
        "MICROSOFT_CLIENT_ID": "m-id",
        "MICROSOFT_CLIENT_SECRET": "m-secret",
    }

    providers = providers_from_env(env)

    assert providers == {
        "google": ProviderConfig("google", "g-id", "g-secret", GOOGLE_ISSUER, GOOGLE_DISCOVERY_URL),
        "microsoft": ProviderConfig(
            "microsoft",
            "m-id",
            "m-secret",
            None,
            "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
        ),
    }
    assert "g-secret" not in repr(providers)


def test_providers_from_env_takes_a_tenant_a_generic_issuer_and_discovery_overrides() -> None:
    env = {
        "GOOGLE_CLIENT_ID": "g-id",
        "GOOGLE_DISCOVERY_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
        "MICROSOFT_CLIENT_ID": "m-id",
        "MICROSOFT_TENANT_ID": TENANT,
        "OIDC_ISSUER": "https://id.example/realms/main/",
        "OIDC_CLIENT_ID": "o-id",
        "OIDC_CLIENT_SECRET": "o-secret",
        "OIDC_PROVIDER_ID": "keycloak",
    }

    providers = providers_from_env(env)

    google = providers["google"]
    assert (google.issuer, google.discovery_url) == (None, env["GOOGLE_DISCOVERY_URL"])
    assert google.client_secret is None
    assert providers["microsoft"].discovery_url == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    )
    assert providers["keycloak"] == ProviderConfig(
        "keycloak",
        "o-id",
        "o-secret",
        "https://id.example/realms/main/",
        "https://id.example/realms/main/.well-known/openid-configuration",
    )
    assert providers_from_env({"OIDC_ISSUER": "https://id.example", "OIDC_CLIENT_ID": "x"})[
        "oidc"
    ].scopes == ("openid", "email", "profile")


@pytest.mark.parametrize(
    "env",
    [
        {"OIDC_ISSUER": "https://id.example"},
        {"OIDC_CLIENT_ID": "o-id"},
        {"OIDC_ISSUER": "https://id.example", "OIDC_CLIENT_ID": "x", "OIDC_PROVIDER_ID": "a/b"},
        {
            "GOOGLE_CLIENT_ID": "g",
            "OIDC_ISSUER": "https://id.example",
            "OIDC_CLIENT_ID": "x",
            "OIDC_PROVIDER_ID": "google",
        },
        {"MICROSOFT_CLIENT_ID": "m", "MICROSOFT_TENANT_ID": "a/../b"},
    ],
)
def test_providers_from_env_refuses_a_half_or_wrongly_configured_provider(
    env: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match=r"OIDC_|MICROSOFT_TENANT_ID"):
        providers_from_env(env)


def test_providers_from_env_leaves_out_unconfigured_providers() -> None:
    assert providers_from_env({"GOOGLE_CLIENT_SECRET": "s", "GOOGLE_CLIENT_ID": " "}) == {}
