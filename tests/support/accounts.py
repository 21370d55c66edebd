"""Accounts over real HTTP against a live server: sign-up, sign-in, links read from the dev
outbox, and step-up password checks through ``POST /api/mutation``.

Each ``httpx.AsyncClient`` is one browser: it keeps its own cookies (the session, the device
cookie, the OAuth state cookie). ``from_address`` sets ``X-Forwarded-For``, which the live
server's uvicorn honours from loopback, so one test can speak from many addresses.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx

PASSWORD = "correct horse battery"
MAGIC_LINK = re.compile(r"https?://\S+/api/auth/magic-link/verify\?\S+")
VERIFY_LINK = re.compile(r"https?://\S+/api/auth/verify-email\?\S+")


def from_address(address: str) -> dict[str, str]:
    return {"x-forwarded-for": address}


async def sign_up(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await http.post(
        "/api/auth/sign-up/email", json={"email": email, "password": password, "name": "Test"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def sign_in(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await http.post(
        "/api/auth/sign-in/email", json={"email": email, "password": password}, headers=headers
    )


async def mails(http: httpx.AsyncClient, email: str) -> list[dict[str, Any]]:
    """Mail to ``email`` so far, newest first (the dev outbox)."""
    response = await http.get("/api/dev/outbox", params={"to": email})
    assert response.status_code == 200, response.text
    return list(response.json())


async def newest_link(http: httpx.AsyncClient, email: str, pattern: re.Pattern[str]) -> str:
    for mail in await mails(http, email):
        found = pattern.search(mail["text"])
        if found:
            return found.group(0)
    raise AssertionError(f"no such link mailed to {email}")


def token_of(link: str) -> str:
    found = re.search(r"[?&]token=([^&\s]+)", link)
    assert found is not None, link
    return unquote(found.group(1))


async def session_user(http: httpx.AsyncClient, token: str | None = None) -> Any:
    """The user behind ``token`` (or the client's session cookie), or None."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = (await http.get("/api/auth/get-session", headers=headers)).json()
    return None if body is None else body["user"]


async def verify_password(
    http: httpx.AsyncClient, session_token: str, password: str, **target: Any
) -> dict[str, Any]:
    """``sensitive:verifyPassword`` over HTTP, as the session behind ``session_token``."""
    auth = {"authorization": f"Bearer {session_token}"}
    jwt = (await http.get("/api/auth/convex/token", headers=auth)).json()["token"]
    response = await http.post(
        "/api/mutation",
        json={
            "path": "sensitive:verifyPassword",
            "args": {"action": "thing.look", "resource": "x", **target, "password": password},
            "format": "json",
        },
        headers={"authorization": f"Bearer {jwt}"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["value"])
