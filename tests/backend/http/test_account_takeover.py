"""Account pre-hijacking, and email verification the Better Auth way, over real HTTP.

The attack: someone signs up with the victim's address and a password of their own, and waits
for the victim to prove the address. The first proof must take the account over cleanly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from tests.support.accounts import (
    MAGIC_LINK,
    PASSWORD,
    VERIFY_LINK,
    mails,
    newest_link,
    session_user,
    sign_in,
    sign_up,
    token_of,
)
from tests.support.live_server import LiveServer, live_server

VICTIM = "ada@example.com"
PLANTED = "the attacker chose this"


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as live:
        yield live


@pytest.fixture
async def strict(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, require_email_verification=True) as live:
        yield live


class Browsers:
    """Independent browsers (cookie jars) on one server."""

    def __init__(self, server: LiveServer, stack: AsyncExitStack) -> None:
        self.server, self.stack = server, stack

    async def new(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.server.url, timeout=10)
        return await self.stack.enter_async_context(client)


@pytest.fixture
async def browsers(server: LiveServer) -> AsyncIterator[Browsers]:
    async with AsyncExitStack() as stack:
        yield Browsers(server, stack)


async def follow_magic_link(browser: httpx.AsyncClient, email: str) -> None:
    asked = await browser.post("/api/auth/sign-in/magic-link", json={"email": email})
    assert asked.status_code == 200, asked.text
    followed = await browser.get(await newest_link(browser, email, MAGIC_LINK))
    assert followed.status_code == 302, followed.text


async def test_an_attackers_sign_up_does_not_survive_the_owners_magic_link(
    browsers: Browsers,
) -> None:
    attacker, owner = await browsers.new(), await browsers.new()
    planted = await sign_up(attacker, VICTIM, PLANTED)
    assert await session_user(attacker) is not None  # the attacker is in, for now

    await follow_magic_link(owner, VICTIM)

    mine = await session_user(owner)
    assert mine["id"] == planted["user"]["id"]  # the address's account, now the owner's
    assert mine["emailVerified"] is True
    assert await session_user(attacker) is None  # the attacker's cookie session is revoked
    assert await session_user(attacker, planted["token"]) is None
    again = await sign_in(attacker, VICTIM, PLANTED)  # and the planted password is gone
    assert again.status_code == 401
    assert again.json()["code"] == "INVALID_EMAIL_OR_PASSWORD"


async def test_the_sign_up_confirmation_link_keeps_the_password_and_ends_older_sessions(
    browsers: Browsers,
) -> None:
    laptop, phone = await browsers.new(), await browsers.new()
    first = await sign_up(laptop, VICTIM)
    assert first["user"]["emailVerified"] is False
    second = (await sign_in(laptop, VICTIM)).json()["token"]
    (mail,) = await mails(phone, VICTIM)
    assert mail["subject"] == "Confirm your email address"
    assert "If you did not, do not open the link" in mail["text"]

    confirmed = await phone.get(await newest_link(phone, VICTIM, VERIFY_LINK))

    assert confirmed.status_code == 302  # to the callbackURL ("/"), signed in
    assert confirmed.headers["location"] == "/"
    assert (await session_user(phone))["emailVerified"] is True
    assert await session_user(laptop, first["token"]) is None
    assert await session_user(laptop, second) is None
    assert (await sign_in(laptop, VICTIM)).status_code == 200  # the confirmed password works


async def test_a_confirmation_link_opened_after_a_takeover_brings_nothing_back(
    browsers: Browsers,
) -> None:
    attacker, owner = await browsers.new(), await browsers.new()
    await sign_up(attacker, VICTIM, PLANTED)
    link = await newest_link(owner, VICTIM, VERIFY_LINK)  # mailed at the attacker's sign-up
    await follow_magic_link(owner, VICTIM)

    late = await attacker.get("/api/auth/verify-email", params={"token": token_of(link)})

    assert late.status_code == 200
    assert late.json() == {"status": True, "user": None}  # verified already; nobody signed in
    assert "set-cookie" not in late.headers
    assert (await sign_in(attacker, VICTIM, PLANTED)).status_code == 401


async def test_verification_links_fail_with_better_auths_codes(
    server: LiveServer, browsers: Browsers
) -> None:
    browser = await browsers.new()
    unknown = await browser.get("/api/auth/verify-email", params={"token": "made-up"})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "INVALID_TOKEN"
    redirected = await browser.get(
        "/api/auth/verify-email", params={"token": "made-up", "callbackURL": "/welcome"}
    )
    assert redirected.status_code == 302
    assert redirected.headers["location"] == "/welcome?error=INVALID_TOKEN"
    await sign_up(browser, VICTIM)
    link = await newest_link(browser, VICTIM, VERIFY_LINK)
    server.clock.advance(minutes=61)
    late = await browser.get("/api/auth/verify-email", params={"token": token_of(link)})
    assert late.status_code == 401
    assert late.json()["code"] == "TOKEN_EXPIRED"
    evil = await browser.post(
        "/api/auth/send-verification-email",
        json={"email": VICTIM, "callbackURL": "https://evil.example/"},
        headers={"origin": server.url},  # the session cookie rides along: same-site only
    )
    assert evil.status_code == 400
    assert evil.json()["code"] == "INVALID_CALLBACK_URL"


async def test_send_verification_email_answers_alike_and_mails_only_unverified_accounts(
    server: LiveServer, browsers: Browsers
) -> None:
    signed_in, anonymous = await browsers.new(), await browsers.new()
    mine = await sign_up(signed_in, VICTIM)
    await sign_up(anonymous, "known@example.com")
    await follow_magic_link(anonymous, "known@example.com")  # proven: no more links for it
    anonymous.cookies.clear()
    for email in (VICTIM, "known@example.com", "nobody@example.com"):
        answer = await anonymous.post(
            "/api/auth/send-verification-email", json={"email": email, "callbackURL": "/in"}
        )
        assert answer.status_code == 200
        assert answer.json() == {"status": True}
    assert len([m for m in await mails(anonymous, VICTIM) if VERIFY_LINK.search(m["text"])]) == 2
    assert [m["subject"] for m in await mails(anonymous, "nobody@example.com")] == []
    assert "callbackURL=%2Fin" in await newest_link(anonymous, VICTIM, VERIFY_LINK)

    bearer = {"authorization": f"Bearer {mine['token']}", "origin": server.url}
    mismatch = await signed_in.post(
        "/api/auth/send-verification-email", json={"email": "known@example.com"}, headers=bearer
    )
    assert mismatch.status_code == 400
    assert mismatch.json()["code"] == "EMAIL_MISMATCH"
    verified = await signed_in.get(await newest_link(signed_in, VICTIM, VERIFY_LINK))
    assert verified.status_code == 302
    again = await signed_in.post(
        "/api/auth/send-verification-email",
        json={"email": VICTIM},
        headers={"origin": server.url},
    )
    assert again.status_code == 400
    assert again.json()["code"] == "EMAIL_ALREADY_VERIFIED"


async def test_verify_email_without_a_callback_answers_json_and_signs_in(
    browsers: Browsers,
) -> None:
    browser = await browsers.new()
    await sign_up(browser, VICTIM)
    browser.cookies.clear()
    token = token_of(await newest_link(browser, VICTIM, VERIFY_LINK))
    answer = await browser.get("/api/auth/verify-email", params={"token": token})
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] is True
    assert body["user"]["email"] == VICTIM
    assert body["user"]["emailVerified"] is True
    assert (await session_user(browser, body["token"]))["id"] == body["user"]["id"]
    spent = await browser.get("/api/auth/verify-email", params={"token": token})
    assert spent.status_code == 401  # single use


async def test_with_required_verification_an_unverified_password_account_gets_no_session(
    strict: LiveServer,
) -> None:
    async with (
        httpx.AsyncClient(base_url=strict.url, timeout=10) as attacker,
        httpx.AsyncClient(base_url=strict.url, timeout=10) as owner,
    ):
        created = await attacker.post(
            "/api/auth/sign-up/email",
            json={"email": VICTIM, "password": PLANTED, "name": "Not Ada"},
        )
        assert created.status_code == 200
        assert created.json()["token"] is None
        assert created.json()["user"]["emailVerified"] is False
        assert "set-cookie" not in created.headers  # no session, no device
        refused = await sign_in(attacker, VICTIM, PLANTED)
        assert refused.status_code == 403
        assert refused.json()["code"] == "EMAIL_NOT_VERIFIED"
        assert "set-cookie" not in refused.headers
        wrong = await sign_in(attacker, VICTIM, "not the password at all")
        assert wrong.status_code == 401  # a wrong password learns nothing more

        # Sign-up does not tell who has an account here: the same answer, no session.
        twice = await attacker.post(
            "/api/auth/sign-up/email",
            json={"email": VICTIM, "password": "another one entirely", "name": "X"},
        )
        assert twice.status_code == 200
        assert twice.json()["token"] is None
        assert set(twice.json()["user"]) == set(created.json()["user"])
        assert twice.json()["user"]["id"] != created.json()["user"]["id"]

        await follow_magic_link(owner, VICTIM)  # the owner takes the address
        assert (await session_user(owner))["emailVerified"] is True
        assert (await sign_in(attacker, VICTIM, PLANTED)).status_code == 401


async def test_with_required_verification_the_confirmed_password_then_signs_in(
    strict: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=strict.url, timeout=10) as browser:
        created = await browser.post(
            "/api/auth/sign-up/email",
            json={"email": VICTIM, "password": PASSWORD, "name": "Ada", "callbackURL": "/orgs"},
        )
        assert created.json()["token"] is None
        link = await newest_link(browser, VICTIM, VERIFY_LINK)
        assert "callbackURL=%2Forgs" in link
        refused = await sign_in(browser, VICTIM)
        assert refused.json()["code"] == "EMAIL_NOT_VERIFIED"
        resent = [m for m in await mails(browser, VICTIM) if VERIFY_LINK.search(m["text"])]
        assert len(resent) == 2  # signing in with the right password mails a fresh link
        confirmed = await browser.get(link)
        assert confirmed.headers["location"] == "/orgs"
        assert (await session_user(browser))["emailVerified"] is True
        signed_in = await sign_in(browser, VICTIM)
        assert signed_in.status_code == 200
        assert signed_in.json()["user"]["emailVerified"] is True
