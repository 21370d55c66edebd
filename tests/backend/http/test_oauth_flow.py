"""OAuth sign-in through our endpoints against a real OIDC provider on loopback, with real
redirects: /sign-in/social → the provider's /authorize → our /callback → a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from backend.runtime import FakeClock
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


async def _sign_in_as(world: World, user: str, callback: str = "/after") -> httpx.Response:
    world.provider.next_user = user
    begin = await world.http.post(
        "/api/auth/sign-in/social", json={"provider": "google", "callbackURL": callback}
    )
    assert begin.status_code == 200, begin.text
    assert begin.json()["redirect"] is True
    authorize = await world.http.get(begin.json()["url"])  # the provider, approving at once
    assert authorize.status_code == 302
    location = authorize.headers["location"]
    assert location.startswith(f"{world.server.url}/api/auth/callback/google?")
    return await world.http.get(location)


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
