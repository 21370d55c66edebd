"""Password guessing locks (one failure record per account, shared by sign-in and step-up),
and yet nobody else can lock the owner out (per-client records, device cookies), over real
HTTP. Addresses rotate through ``X-Forwarded-For``, which uvicorn honours from loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from backend.auth.passwords import Passwords
from tests.support.accounts import (
    MAGIC_LINK,
    PASSWORD,
    from_address,
    mails,
    newest_link,
    session_user,
    sign_in,
    sign_up,
    verify_password,
)
from tests.support.live_server import LiveServer, live_server

OWNER = "owner@example.com"
WRONG = "not the password at all"


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as live:
        yield live


def browser(server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=10)


async def guess_from_rotating_addresses(server: LiveServer, email: str, times: int) -> list[int]:
    async with browser(server) as attacker:
        return [
            (
                await sign_in(attacker, email, WRONG, **from_address(f"203.0.113.{i + 1}"))
            ).status_code
            for i in range(times)
        ]


async def test_wrong_passwords_from_rotating_addresses_do_not_lock_out_the_owners_known_device(
    server: LiveServer,
) -> None:
    async with browser(server) as owner:
        await sign_up(owner, OWNER)  # this browser is now a known device of the account

        statuses = await guess_from_rotating_addresses(server, OWNER, 12)

        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]  # strangers are locked out now
        mine = await sign_in(owner, OWNER)  # the owner, from the device they signed in on
        assert mine.status_code == 200, mine.text
        assert mine.json()["user"]["email"] == OWNER


async def test_a_locked_out_stranger_learns_nothing_not_even_from_the_right_password(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with browser(server) as owner:
        await sign_up(owner, OWNER)
    await guess_from_rotating_addresses(server, OWNER, 10)
    passwords: Passwords = server.app.state.auth.passwords
    checks: list[str] = []
    real_verify = passwords.verify

    async def counted(stored: str | None, password: str) -> tuple[bool, str | None]:
        checks.append(password)
        return await real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify", counted)
    async with browser(server) as stranger:
        right = await sign_in(stranger, OWNER, PASSWORD, **from_address("198.51.100.7"))
        wrong = await sign_in(stranger, OWNER, WRONG, **from_address("198.51.100.8"))
        # A forged device cookie makes nobody a known device.
        stranger.cookies.set("stepup.device", "made-up.0123456789abcdef", path="/api/auth")
        forged = await sign_in(stranger, OWNER, PASSWORD, **from_address("198.51.100.9"))
    assert right.status_code == wrong.status_code == forged.status_code == 429
    assert right.json().keys() == wrong.json().keys() == {"code", "message", "retryAfterMs"}
    assert right.json()["code"] == "RATE_LIMITED"
    assert "set-cookie" not in right.headers  # no session
    assert checks == []  # the password was never looked at
    server.clock.advance(minutes=2)
    async with browser(server) as later:
        assert (
            await sign_in(later, OWNER, PASSWORD, **from_address("198.51.100.10"))
        ).status_code == 200


async def test_an_unknown_address_is_counted_and_locked_exactly_like_a_known_one(
    server: LiveServer,
) -> None:
    async with browser(server) as owner:
        await sign_up(owner, OWNER)
    known = await guess_from_rotating_addresses(server, OWNER, 11)
    unknown = await guess_from_rotating_addresses(server, "nobody@example.com", 11)
    assert known == unknown == [401] * 10 + [429]


async def test_step_up_password_failures_lock_password_sign_in_too(server: LiveServer) -> None:
    async with browser(server) as owner, browser(server) as elsewhere:
        token = (await sign_up(owner, OWNER))["token"]
        answers = []
        for round_ in range(2):  # the step-up check allows five per 15 minutes
            answers += [(await verify_password(owner, token, WRONG))["code"] for _ in range(5)]
            if round_ == 0:
                server.clock.advance(minutes=15)
        assert "INVALID_PASSWORD" in answers
        locked_step_up = await verify_password(owner, token, PASSWORD)
        assert locked_step_up["code"] == "RATE_LIMITED"  # the step-up check is locked...

        # ...and signing in neither confirms the password nor hands out a session, anywhere.
        for client in (owner, elsewhere):
            locked = await sign_in(client, OWNER)
            assert locked.status_code == 429, locked.text
            assert locked.json()["code"] == "RATE_LIMITED"
            assert "stepup.session_token" not in locked.headers.get("set-cookie", "")
        server.clock.advance(minutes=1)
        assert (await sign_in(elsewhere, OWNER)).status_code == 200


async def test_sign_in_failures_lock_that_devices_step_up_but_not_another_devices(
    server: LiveServer,
) -> None:
    async with browser(server) as laptop, browser(server) as phone:
        laptop_token = (await sign_up(laptop, OWNER))["token"]
        phone_token = (await sign_in(phone, OWNER)).json()["token"]
        statuses = [(await sign_in(laptop, OWNER, WRONG)).status_code for _ in range(11)]
        assert statuses == [401] * 10 + [429]  # the laptop's own record locks the laptop

        locked = await verify_password(laptop, laptop_token, PASSWORD)
        assert locked["code"] == "RATE_LIMITED"
        assert locked["retryAfterMs"] > 0
        assert (await verify_password(phone, phone_token, PASSWORD))["ok"] is True
        assert (await sign_in(phone, OWNER)).status_code == 200


async def test_an_attackers_magic_link_requests_do_not_block_the_owners_link(
    server: LiveServer,
) -> None:
    async with browser(server) as attacker, browser(server) as owner:
        asked = [
            (await attacker.post("/api/auth/sign-in/magic-link", json={"email": OWNER})).status_code
            for _ in range(6)
        ]
        assert asked == [200] * 5 + [429]  # what this client may ask for this inbox

        mine = await owner.post(
            "/api/auth/sign-in/magic-link",
            json={"email": OWNER},
            headers=from_address("192.0.2.10"),
        )
        assert mine.status_code == 200, mine.text
        assert len(await mails(owner, OWNER)) == 6
        followed = await owner.get(await newest_link(owner, OWNER, MAGIC_LINK))
        assert followed.status_code == 302
        assert (await session_user(owner))["email"] == OWNER  # and a known device now

        # From many addresses, the attacker runs into the inbox's own ceiling...
        flood = [
            (
                await attacker.post(
                    "/api/auth/sign-in/magic-link",
                    json={"email": OWNER},
                    headers=from_address(f"203.0.113.{i + 1}"),
                )
            ).status_code
            for i in range(20)
        ]
        assert flood[-1] == 429
        assert 200 in flood
        before = len(await mails(owner, OWNER))
        # ...which does not hold the owner's known device back.
        again = await owner.post(
            "/api/auth/sign-in/magic-link",
            json={"email": OWNER},
            headers=from_address("192.0.2.10"),
        )
        assert again.status_code == 200, again.text
        assert len(await mails(owner, OWNER)) == before + 1


async def test_the_device_cookie_is_signed_httponly_lax_and_long_lived(
    server: LiveServer,
) -> None:
    async with browser(server) as client:
        signed_up = await client.post(
            "/api/auth/sign-up/email",
            json={"email": OWNER, "password": PASSWORD, "name": "Owner"},
        )
        cookies = signed_up.headers.get_list("set-cookie")
        (device,) = [c for c in cookies if c.startswith("stepup.device=")]
        assert "HttpOnly" in device
        assert "samesite=lax" in device.lower()
        assert "Path=/api/auth" in device
        assert f"Max-Age={365 * 24 * 3600}" in device
        value = device.split(";")[0].split("=", 1)[1]
        assert "." in value  # an id and its signature
        again = await sign_in(client, OWNER)
        (renewed,) = [c for c in again.headers.get_list("set-cookie") if "stepup.device=" in c]
        assert renewed.split(";")[0].split("=", 1)[1] == value  # the same device, kept
