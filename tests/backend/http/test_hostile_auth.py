"""Every auth endpoint under malformed, mistyped and oversized input: a coded 4xx, never 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.live_server import live_server

# (sign-out reads no body and always succeeds: it has nothing to refuse)
POSTS = [
    "/api/auth/sign-up/email",
    "/api/auth/sign-in/email",
    "/api/auth/sign-in/magic-link",
    "/api/auth/sign-in/social",
    "/api/auth/send-verification-email",
    "/api/auth/revoke-session",
    "/api/auth/revoke-other-sessions",
    "/api/query",
    "/api/mutation",
    "/api/action",
]
BODIES = [
    b"{not json",
    b"[1,2,3]",
    b'"a string"',
    b'{"email": {"$bytes": "AA=="}, "password": [1], "name": null, "provider": 7}',
    b'{"email": "' + b"a" * 10_000 + b'@example.com", "password": "x"}',
    b"\xff\xfe\x00garbage",
    b'{"path": 5, "args": "x"}',
    b'{"path": "counters:get", "args": [{"name": {"$integer": "nope"}}]}',
    b"{" + b'"a":' * 5000 + b"1" + b"}" * 5000,
    b"x" * (9 * 1024 * 1024),
]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with (
        live_server(None) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
    ):
        yield client


async def test_every_endpoint_answers_bad_input_with_a_coded_4xx(http: httpx.AsyncClient) -> None:
    seen: set[int] = set()
    for path in POSTS:
        for body in BODIES:
            response = await http.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            assert 400 <= response.status_code < 500 or response.status_code == 560, (
                path,
                body[:40],
                response.status_code,
                response.text[:200],
            )
            seen.add(response.status_code)
            data = response.json()
            assert isinstance(data, dict)
            assert data.get("code") or data.get("status") == "error", (path, data)
    assert 413 in seen  # the oversized body was refused as such


async def test_get_endpoints_tolerate_hostile_query_strings(http: httpx.AsyncClient) -> None:
    for params in (
        {"token": "x" * 5000},
        {"token": ""},
        {"token": "\u0000"},
        {"code": "a", "state": "b"},
    ):
        for path in (
            "/api/auth/magic-link/verify",
            "/api/auth/verify-email",
            "/api/auth/callback/google",
            "/api/auth/get-session",
        ):
            response = await http.get(path, params=params)
            assert response.status_code < 500, (path, params, response.text[:200])
    for token in ("Bearer", "Bearer x y", "Basic abc", "Bearer " + "z" * 10_000):
        response = await http.get("/api/auth/convex/token", headers={"authorization": token})
        assert response.status_code in (400, 401), response.text


async def test_hostile_device_and_state_cookies_are_nobody(http: httpx.AsyncClient) -> None:
    for value in ("", ".", "x" * 5000, "a.b.c", "\u00e9.\u00fc", "%00.%00", '"."'):
        cookie = f"stepup.device={value}; stepup.oauth_state={value}".encode()
        headers = {b"cookie": cookie}
        for response in (
            await http.post(
                "/api/auth/sign-in/email",
                json={"email": "a@example.com", "password": "x" * 9},
                headers=headers,
            ),
            await http.post(
                "/api/auth/sign-in/magic-link", json={"email": "a@example.com"}, headers=headers
            ),
            await http.get(
                "/api/auth/callback/google", params={"code": "a", "state": "b"}, headers=headers
            ),
        ):
            assert response.status_code < 500, (value, response.text[:200])
            assert isinstance(response.json(), dict)
