"""OAuth sign-in through our endpoints against a real OIDC provider on loopback, with real
redirects: /sign-in/social → the provider's /authorize → our /callback → a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from backend.runtime import FakeClock
from tests.support.accounts import MAGIC_LINK, newest_link, session_user, sign_in, sign_up
from tests.support.live_server import LiveServer, live_server
from tests.support.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OidcProvider,
    TestUser,
    run_oidc_provider,
)


@dataclass
class World:
    server: LiveServer
    provider: OidcProvider
    http: httpx.AsyncClient


@pytest.fixture
async def world(database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    clock = FakeClock()
    users = {
        "carol": TestUser("sub-carol", "carol@example.com", True, "Carol"),
        "mallory": TestUser("sub-mallory", "ada@example.com", False, "Not Ada"),
        "ada": TestUser("sub-ada", "ada@example.com", True, "Ada"),
    }
    async with run_oidc_provider(users, clock=clock, redirect_uris=()) as provider:
        monkeypatch.setenv("GOOGLE_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("GOOGLE_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("GOOGLE_DISCOVERY_URL", provider.discovery_url)
        async with live_server(database_url, clock=clock) as server:
            provider.redirect_uris = frozenset({f"{server.url}/api/auth/callback/google"})
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                yield World(server, provider, http)


async def _callback_url(
    world: World, user: str, callback: str = "/after", browser: httpx.AsyncClient | None = None
) -> str:
    """Begin a sign-in in ``browser`` and approve it at the provider: the URL the provider
    sends the browser back to."""
    browser = browser or world.http
    world.provider.next_user = user
    begin = await browser.post(
        "/api/auth/sign-in/social", json={"provider": "google", "callbackURL": callback}
    )
    assert begin.status_code == 200, begin.text
    assert begin.json()["redirect"] is True
    authorize = await browser.get(begin.json()["url"])  # the provider, approving at once
    assert authorize.status_code == 302
    location = str(authorize.headers["location"])
    assert location.startswith(f"{world.server.url}/api/auth/callback/google?")
    return location


async def _sign_in_as(
    world: World, user: str, callback: str = "/after", browser: httpx.AsyncClient | None = None
) -> httpx.Response:
    browser = browser or world.http
    return await browser.get(await _callback_url(world, user, callback, browser))


def _browser(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=world.server.url, timeout=10)


async def test_a_new_user_signs_in_with_the_provider(world: World) -> None:
    callback = await _sign_in_as(world, "carol")
    assert callback.status_code == 302
    assert callback.headers["location"] == "/after"
    assert "HttpOnly" in callback.headers["set-cookie"]
    session = (await world.http.get("/api/auth/get-session")).json()
    assert session["user"]["email"] == "carol@example.com"
    assert session["user"]["emailVerified"] is True
    assert session["user"]["name"] == "Carol"
    replay = await world.http.get(callback.request.url)  # the same code and state again
    assert replay.status_code == 400
    assert replay.json()["code"] == "OAUTH_FAILED"


async def test_a_verified_email_links_to_the_existing_user_and_an_unverified_one_does_not(
    world: World,
) -> None:
    created = await world.http.post(
        "/api/auth/sign-up/email",
        json={"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"},
    )
    ada_id = created.json()["user"]["id"]
    world.http.cookies.clear()
    refused = await _sign_in_as(world, "mallory")
    assert refused.status_code == 400
    assert refused.json()["code"] == "OAUTH_ACCOUNT_NOT_LINKED"
    linked = await _sign_in_as(world, "ada")
    assert linked.status_code == 302
    session = (await world.http.get("/api/auth/get-session")).json()
    assert session["user"]["id"] == ada_id
    again = await _sign_in_as(world, "ada")  # now by the linked account
    assert again.status_code == 302
    assert (await world.http.get("/api/auth/get-session")).json()["user"]["id"] == ada_id


async def test_a_tampered_or_unknown_state_is_refused(world: World) -> None:
    world.provider.next_user = "carol"
    begin = await world.http.post("/api/auth/sign-in/social", json={"provider": "google"})
    authorize = await world.http.get(begin.json()["url"])
    location = httpx.URL(authorize.headers["location"])
    tampered = location.copy_set_param("state", "not-the-state")
    response = await world.http.get(tampered)
    assert response.status_code == 400
    assert response.json()["code"] == "OAUTH_FAILED"
    unknown = await world.http.post("/api/auth/sign-in/social", json={"provider": "myspace"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "PROVIDER_NOT_FOUND"
    malformed = await world.http.get("/api/auth/callback/google")
    assert malformed.status_code == 400


async def test_the_configured_providers_are_listed(world: World) -> None:
    assert (await world.http.get("/api/auth/providers")).json() == {"providers": ["google"]}


async def test_an_attackers_callback_url_opened_in_a_victims_browser_does_not_sign_them_in(
    world: World,
) -> None:
    # The attacker approves a sign-in as themselves, and sends the victim the callback URL.
    planted = await _callback_url(world, "carol")
    cookie = world.http.cookies.get("stepup.oauth_state")
    assert cookie is not None
    async with _browser(world) as victim, _browser(world) as busy_victim:
        opened = await victim.get(planted)
        assert opened.status_code == 400
        assert opened.json()["code"] == "OAUTH_FAILED"
        assert "stepup.session_token" not in opened.headers.get("set-cookie", "")
        assert await session_user(victim) is None
        # A victim in the middle of a sign-in of their own has a state cookie, but not this one.
        await _callback_url(world, "ada", browser=busy_victim)
        assert (await busy_victim.get(planted)).status_code == 400
        assert await session_user(busy_victim) is None
        # A forged cookie is no better.
        victim.cookies.set("stepup.oauth_state", "0" * len(cookie), path="/api/auth/callback")
        assert (await victim.get(planted)).status_code == 400
    finished = await world.http.get(planted)  # in the browser that began it, it works
    assert finished.status_code == 302
    assert (await session_user(world.http))["email"] == "carol@example.com"


async def test_the_state_cookie_is_signed_httponly_lax_and_scoped_to_the_callback(
    world: World,
) -> None:
    begin = await world.http.post("/api/auth/sign-in/social", json={"provider": "google"})
    cookie = begin.headers["set-cookie"]
    assert cookie.startswith("stepup.oauth_state=")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/api/auth/callback" in cookie
    assert "Max-Age=600" in cookie
    state = httpx.URL(begin.json()["url"]).params["state"]
    assert state not in cookie  # a keyed hash of the state, not the state


async def test_a_provider_that_vouches_for_the_address_takes_a_planted_account_over(
    world: World,
) -> None:
    async with _browser(world) as attacker:
        planted = await sign_up(attacker, "ada@example.com", "the attacker chose this")
        signed_in = await _sign_in_as(world, "ada")
        assert signed_in.status_code == 302
        mine = await session_user(world.http)
        assert mine["id"] == planted["user"]["id"]
        assert mine["emailVerified"] is True
        assert await session_user(attacker, planted["token"]) is None
        assert (
            await sign_in(attacker, "ada@example.com", "the attacker chose this")
        ).status_code == 401


async def test_an_identity_the_provider_did_not_vouch_for_is_unlinked_by_the_owners_proof(
    world: World,
) -> None:
    async with _browser(world) as attacker:
        # Mallory's provider does not vouch for ada@example.com; the account is made anyway.
        first = await _sign_in_as(world, "mallory", browser=attacker)
        assert first.status_code == 302
        assert (await session_user(attacker))["emailVerified"] is False
        await world.http.post("/api/auth/sign-in/magic-link", json={"email": "ada@example.com"})
        followed = await world.http.get(
            await newest_link(world.http, "ada@example.com", MAGIC_LINK)
        )
        assert followed.status_code == 302
        assert await session_user(attacker) is None  # Mallory's session is over
        again = await _sign_in_as(world, "mallory", browser=attacker)
        assert again.status_code == 400
        assert again.json()["code"] == "OAUTH_ACCOUNT_NOT_LINKED"
