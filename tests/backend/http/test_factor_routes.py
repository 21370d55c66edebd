"""``/api/auth/change-password`` and ``/api/auth/change-email`` over real HTTP, in Better
Auth's shapes: refused without a step-up (403, with the methods), refused across origins on
the cookie, and done with one."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.backend.http.test_auth_routes import same_origin, sign_up
from tests.support.live_server import LiveServer, live_server

PASSWORD = "correct horse battery"


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


async def mutation(
    http: httpx.AsyncClient, token: str, path: str, args: dict[str, object]
) -> object:
    jwt = await http.get("/api/auth/convex/token", headers={"authorization": f"Bearer {token}"})
    response = await http.post(
        "/api/mutation",
        json={"path": path, "args": args, "format": "json"},
        headers={"authorization": f"Bearer {jwt.json()['token']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["value"]


async def mailed_code(server: LiveServer) -> str:
    for _ in range(200):  # delivered by the server's scheduler, shortly after the commit
        codes = [m for m in server.mail.sent if m.subject.startswith("Your verification code")]
        if codes:
            found = re.search(r"\b(\d{6})\b", codes[-1].text)
            assert found is not None
            return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError("no code was mailed")


async def test_change_password_needs_a_step_up_then_works(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = (await sign_up(http))["token"]
    bearer = {"authorization": f"Bearer {token}"}
    body = {"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"}
    refused = await http.post("/api/auth/change-password", json=body, headers=bearer)
    assert refused.status_code == 403
    assert refused.json()["code"] == "SENSITIVE_VERIFICATION_REQUIRED"
    assert refused.json()["methods"] == ["email"]
    sent = await mutation(
        http, token, "sensitive:sendEmailCode", {"action": "account.password.change"}
    )
    assert sent["ok"] is True  # type: ignore[index]
    code = await mailed_code(server)
    verified = await mutation(
        http,
        token,
        "sensitive:verifyEmailCode",
        {"action": "account.password.change", "code": code},
    )
    assert verified["ok"] is True  # type: ignore[index]
    wrong = await http.post(
        "/api/auth/change-password", json={**body, "currentPassword": "nope nope"}, headers=bearer
    )
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "INVALID_PASSWORD"
    done = await http.post("/api/auth/change-password", json=body, headers=bearer)
    assert done.status_code == 200, done.text
    assert set(done.json()) == {"token", "user"}
    signed_in = await http.post(
        "/api/auth/sign-in/email",
        json={"email": "ada@example.com", "password": "a brand new passphrase"},
    )
    assert signed_in.status_code == 200


async def test_the_cookie_does_not_change_a_password_from_another_origin(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await sign_up(http)  # the client keeps the cookie
    response = await http.post(
        "/api/auth/change-password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "INVALID_ORIGIN"
    same = await http.post(
        "/api/auth/change-email",
        json={"newEmail": "new@example.com"},
        headers=same_origin(server),
    )
    assert same.status_code == 403
    assert same.json()["code"] == "SENSITIVE_VERIFICATION_REQUIRED"


@pytest.mark.parametrize(
    "body",
    [{}, {"currentPassword": 5, "newPassword": "x"}, {"newPassword": "a brand new passphrase"}],
)
async def test_bad_bodies_are_coded(http: httpx.AsyncClient, body: dict[str, object]) -> None:
    token = (await sign_up(http))["token"]
    response = await http.post(
        "/api/auth/change-password", json=body, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_ARGUMENT"


async def test_a_bad_confirmation_link_is_coded(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/auth/change-email/verify", params={"token": "nope"})
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
