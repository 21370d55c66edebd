"""Every endpoint of the contract's section 3, over real HTTP, including hostile input."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from tests.support.live_server import LiveServer, live_server

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ORIGIN = {"origin": "http://127.0.0.1"}  # replaced per server below


@pytest.fixture
async def server(database_url: str | None) -> AsyncIterator[LiveServer]:
    async with live_server(database_url, allowed_origins=["https://app.example"]) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


def same_origin(server: LiveServer) -> dict[str, str]:
    return {"origin": server.url}


async def sign_up(http: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    response = await http.post(
        "/api/auth/sign-up/email",
        json={"email": email, "password": "correct horse battery", "name": "Ada"},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_sign_up_answers_token_and_whole_user_and_sets_the_cookie(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/api/auth/sign-up/email",
        json={
            "email": "Ada@Example.com",
            "password": "correct horse battery",
            "name": "Ada",
            "x": 1,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert set(user) == {"id", "email", "name", "emailVerified", "image", "createdAt", "updatedAt"}
    assert user["email"] == "ada@example.com"
    assert ISO.match(user["createdAt"])
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Max-Age=" in cookie
    assert body["token"] in cookie
    again = await http.post(
        "/api/auth/sign-up/email",
        json={"email": "ada@example.com", "password": "another good one", "name": "A"},
    )
    assert again.status_code == 422
    assert again.json()["code"] == "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "INVALID_ARGUMENT"),
        (b"[]", 400, "INVALID_ARGUMENT"),
        (b'{"email": "x", "password": "correct horse battery"}', 400, "INVALID_EMAIL"),
        (b'{"email": 5, "password": "correct horse battery"}', 400, "INVALID_EMAIL"),
        (b'{"email": "a@example.com", "password": "short"}', 400, "PASSWORD_TOO_SHORT"),
        (b'{"email": "a@example.com", "password": 12345678}', 400, "PASSWORD_TOO_SHORT"),
        (b'{"email": "a@example.com"}', 400, "PASSWORD_TOO_SHORT"),
        (b'{"email": "a@example.com", "password": "password"}', 400, "PASSWORD_TOO_WEAK"),
        (
            b'{"email": "a@example.com", "password": "' + b"x" * 100_000 + b'"}',
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
)
async def test_sign_up_refuses_bad_input_with_coded_4xx(
    http: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    response = await http.post(
        "/api/auth/sign-up/email", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert set(response.json()) >= {"code", "message"}


async def test_sign_in_answers_alike_for_wrong_password_and_unknown_email(
    http: httpx.AsyncClient,
) -> None:
    await sign_up(http)
    ok = await http.post(
        "/api/auth/sign-in/email",
        json={"email": "ada@example.com", "password": "correct horse battery"},
    )
    assert ok.status_code == 200
    assert ok.json()["redirect"] is False
    assert ok.json()["user"]["email"] == "ada@example.com"
    wrong = await http.post(
        "/api/auth/sign-in/email",
        json={"email": "ada@example.com", "password": "wrong horse battery"},
    )
    unknown = await http.post(
        "/api/auth/sign-in/email",
        json={"email": "nobody@example.com", "password": "wrong horse battery"},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "INVALID_EMAIL_OR_PASSWORD"


async def test_sign_in_is_rate_limited_per_email(http: httpx.AsyncClient) -> None:
    await sign_up(http)
    statuses = []
    for _ in range(12):
        response = await http.post(
            "/api/auth/sign-in/email",
            json={"email": "ada@example.com", "password": "nope nope nope"},
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert response.json()["retryAfterMs"] > 0
    assert int(response.headers["retry-after"]) >= 1


async def test_get_session_by_bearer_and_by_cookie_then_sign_out(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = (await sign_up(http))["token"]
    by_bearer = await http.get(
        "/api/auth/get-session", headers={"authorization": f"Bearer {token}"}
    )
    assert by_bearer.headers["cache-control"] == "no-store"
    session = by_bearer.json()["session"]
    assert {"id", "userId", "createdAt", "expiresAt"} <= set(session)
    assert ISO.match(session["expiresAt"])
    by_cookie = await http.get("/api/auth/get-session")  # the client kept the cookie
    assert by_cookie.json()["session"]["id"] == session["id"]

    refused = await http.post("/api/auth/sign-out", json={})  # cookie, no Origin: CSRF check
    assert refused.status_code == 403
    assert refused.json()["code"] == "INVALID_ORIGIN"
    cross = await http.post(
        "/api/auth/sign-out", json={}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    out = await http.post("/api/auth/sign-out", json={}, headers=same_origin(server))
    assert out.json() == {"success": True}
    again = await http.post(
        "/api/auth/sign-out", json={}, headers={"authorization": f"Bearer {token}"}
    )
    assert again.json() == {"success": True}  # a dead session signs out all the same
    assert (
        "Max-Age=0" in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    )
    gone = await http.get("/api/auth/get-session", headers={"authorization": f"Bearer {token}"})
    assert gone.json() is None


async def test_forged_and_expired_session_tokens_are_nobody(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = (await sign_up(http))["token"]
    http.cookies.clear()
    forged = await http.get(
        "/api/auth/get-session", headers={"authorization": "Bearer " + "A" * 43}
    )
    assert forged.json() is None
    assert (
        await http.get("/api/auth/convex/token", headers={"authorization": "Bearer x"})
    ).status_code == 401
    server.clock.advance(days=8)
    expired = await http.get("/api/auth/get-session", headers={"authorization": f"Bearer {token}"})
    assert expired.json() is None


async def test_magic_link_never_reveals_the_email_and_signs_in_once(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    await sign_up(http, "known@example.com")
    http.cookies.clear()
    for email in ("known@example.com", "new@example.com"):
        response = await http.post("/api/auth/sign-in/magic-link", json={"email": email})
        assert response.status_code == 200
        assert response.json() == {"status": True}
    outbox = (await http.get("/api/dev/outbox", params={"to": "new@example.com"})).json()
    assert len(outbox) == 1
    assert {"to", "subject", "text", "sentAt"} <= set(outbox[0])
    token = re.search(r"token=([^&\s]+)", outbox[0]["text"])
    assert token is not None
    verified = await http.get("/api/auth/magic-link/verify", params={"token": token.group(1)})
    assert verified.status_code == 200
    assert verified.json()["user"]["email"] == "new@example.com"
    assert verified.json()["user"]["emailVerified"] is True
    reused = await http.get("/api/auth/magic-link/verify", params={"token": token.group(1)})
    assert reused.status_code == 401
    assert reused.json()["code"] == "INVALID_TOKEN"


async def test_magic_link_expires_and_redirects_only_to_this_site(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    evil = await http.post(
        "/api/auth/sign-in/magic-link",
        json={"email": "a@example.com", "callbackURL": "https://evil.example/"},
    )
    assert evil.status_code == 400
    assert evil.json()["code"] == "INVALID_CALLBACK_URL"
    await http.post(
        "/api/auth/sign-in/magic-link", json={"email": "a@example.com", "callbackURL": "/orgs"}
    )
    (mail,) = (await http.get("/api/dev/outbox", params={"to": "a@example.com"})).json()
    link = re.search(r"(http://\S+/api/auth/magic-link/verify\?\S+)", mail["text"])
    assert link is not None
    redirected = await http.get(link.group(1))  # the link as mailed, as a browser follows it
    assert redirected.status_code == 302
    assert redirected.headers["location"] == "/orgs"
    assert "HttpOnly" in redirected.headers["set-cookie"]
    await http.post("/api/auth/sign-in/magic-link", json={"email": "b@example.com"})
    (mail,) = (await http.get("/api/dev/outbox", params={"to": "b@example.com"})).json()
    token = re.search(r"token=([^&\s]+)", mail["text"])
    assert token is not None
    server.clock.advance(minutes=11)
    late = await http.get("/api/auth/magic-link/verify", params={"token": token.group(1)})
    assert late.status_code == 401


async def test_convex_token_is_a_fresh_jwt_verifiable_with_the_jwks(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    signed = await sign_up(http)
    headers = {"authorization": f"Bearer {signed['token']}"}
    first = (await http.get("/api/auth/convex/token", headers=headers)).json()["token"]
    second = (await http.get("/api/auth/convex/token", headers=headers)).json()["token"]
    assert first != second
    keys = (await http.get("/api/auth/jwks")).json()["keys"]
    header = jwt.get_unverified_header(first)
    (key,) = [k for k in keys if k["kid"] == header["kid"]]
    claims = jwt.decode(
        first,
        jwt.PyJWK(key).key,
        algorithms=["ES256"],
        audience="convex",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == signed["user"]["id"]
    assert {"sub", "sid", "iat", "exp", "iss", "aud", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] > 2


async def test_sessions_can_be_listed_and_others_revoked(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    first = (await sign_up(http))["token"]
    second = (
        await http.post(
            "/api/auth/sign-in/email",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
    ).json()["token"]
    http.cookies.clear()
    listed = (
        await http.get("/api/auth/list-sessions", headers={"authorization": f"Bearer {first}"})
    ).json()
    assert len(listed) == 2
    third = (
        await http.post(
            "/api/auth/sign-in/email",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        )
    ).json()["token"]
    http.cookies.clear()
    by_token = await http.post(
        "/api/auth/revoke-session",
        json={"token": third},
        headers={"authorization": f"Bearer {first}"},
    )
    assert by_token.json() == {"status": True}
    assert (
        await http.get("/api/auth/get-session", headers={"authorization": f"Bearer {third}"})
    ).json() is None
    revoked = await http.post(
        "/api/auth/revoke-other-sessions", json={}, headers={"authorization": f"Bearer {first}"}
    )
    assert revoked.json() == {"status": True}
    assert (
        await http.get("/api/auth/get-session", headers={"authorization": f"Bearer {second}"})
    ).json() is None
    assert (
        await http.get("/api/auth/get-session", headers={"authorization": f"Bearer {first}"})
    ).json()


async def test_cors_only_for_configured_origins(http: httpx.AsyncClient) -> None:
    allowed = await http.options(
        "/api/auth/get-session",
        headers={"origin": "https://app.example", "access-control-request-method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = await http.options(
        "/api/auth/get-session",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in other.headers


async def test_social_sign_in_without_providers_is_a_coded_404(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/auth/providers")).json() == {"providers": []}
    response = await http.post("/api/auth/sign-in/social", json={"provider": "google"})
    assert response.status_code == 404
    assert response.json()["code"] == "PROVIDER_NOT_FOUND"


async def test_dev_outbox_is_not_served_outside_dev_mode(database_url: str | None) -> None:
    async with (
        live_server(database_url, dev_mode=False) as live,
        httpx.AsyncClient(base_url=live.url) as http,
    ):
        assert (await http.get("/api/dev/outbox")).status_code == 404


async def test_a_dead_magic_link_followed_in_a_browser_lands_on_the_site(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(
        "/api/auth/magic-link/verify", params={"token": "expired-or-made-up", "callbackURL": "/"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == "/?error=INVALID_TOKEN"


async def test_the_site_reached_by_another_name_is_still_same_origin(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    token = (await sign_up(http))["token"]
    port = server.url.rsplit(":", 1)[1]
    headers = {"origin": f"http://localhost:{port}", "host": f"localhost:{port}"}
    out = await http.post("/api/auth/sign-out", json={}, headers=headers)
    assert out.json() == {"success": True}
    assert (
        await http.get("/api/auth/get-session", headers={"authorization": f"Bearer {token}"})
    ).json() is None
