"""HTTP actions at the site origin: routing as Convex routes, bearer identities, body limits,
paths that try to climb out of a prefix, and failures that tell a caller nothing."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import pytest
from starlette.requests import Request
from starlette.responses import Response

from backend import ActionCtx, HttpRouter, http_action
from backend.testing import TestBackend
from backend.udf.app import App, load_app


@functools.cache
def site_app() -> App:
    return load_app("tests.apps.site.schema", "tests.apps.site.functions")


@pytest.fixture
async def site(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, app=site_app(), dev_mode=False) as t:
        yield t


# ---- the attacker's requests ---------------------------------------------------------------


async def test_a_forged_bearer_token_is_refused_and_the_handler_never_runs(
    site: TestBackend,
) -> None:
    ada = await site.sign_up("ada@example.com", "correct horse battery")
    token = await ada.jwt()
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for bad in (forged, "not-a-jwt", f"{header}.{payload}."):
        answer = await site.fetch("/whoami", headers={"Authorization": f"Bearer {bad}"})
        assert answer.status_code == 401
        assert answer.json()["code"] == "UNAUTHENTICATED"
    answer = await site.fetch("/whoami", headers={"Authorization": "Basic YWRhOnB3"})
    assert answer.status_code == 401


async def test_an_expired_bearer_token_is_refused(site: TestBackend) -> None:
    ada = await site.sign_up("ada@example.com", "correct horse battery")
    token = await ada.jwt()
    site.clock.advance(minutes=16)  # tokens live 15 minutes
    answer = await site.fetch("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "UNAUTHENTICATED"


async def test_a_token_of_a_signed_out_session_is_nobody(site: TestBackend) -> None:
    ada = await site.sign_up("ada@example.com", "correct horse battery")
    token = await ada.jwt()
    assert (await site.fetch("/whoami", headers={"Authorization": f"Bearer {token}"})).json() == {
        "subject": ada.user_id
    }
    await site.auth.sign_out(ada.token)
    answer = await site.fetch("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert answer.json() == {"subject": None}


async def test_a_body_past_the_limit_is_413_declared_or_streamed(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, app=site_app(), http_action_max_body=1000) as t:
        declared = await t.fetch("/echo", method="POST", body=b"x" * 1001)
        assert declared.status_code == 413
        assert declared.json()["code"] == "PAYLOAD_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"y" * 400

        streamed = await t._http_client().post("/stream", content=chunks())
        assert streamed.status_code == 413
        assert (await t.fetch("/echo", method="POST", body=b"x" * 1000)).json()["bytes"] == 1000
        lying = await t.fetch(
            "/echo", method="POST", body=b"x", headers={"content-length": "not-a-number"}
        )
        assert lying.status_code in (400, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/files/../boom",
        "/files/%2e%2e/boom",
        "/files/a/%2E%2E%2Fboom",
        "/files/a%2F..%2F..%2Fboom",
        "/files/./x",
        "/files/a/..",
        "/files/a\\..\\b",
    ],
)
async def test_a_path_that_climbs_out_of_a_prefix_is_refused(site: TestBackend, path: str) -> None:
    # sent as it is: httpx, as a browser, would resolve the dots before sending
    for host, prefix in (("site.testserver", ""), ("testserver", "/http")):
        status, body = await raw_get(site, host, prefix + path)
        assert status == 400, (host, path)
        assert b"INVALID_ARGUMENT" in body


async def raw_get(t: TestBackend, host: str, raw_path: str) -> tuple[int, bytes]:
    t._http_client()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 1),
        "server": (host, 80),
    }
    await t.asgi(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), body


async def test_a_method_without_a_route_is_404_as_convex_answers(site: TestBackend) -> None:
    for method, path in [
        ("GET", "/echo"),  # routed for POST and PUT only
        ("DELETE", "/echo"),
        ("PATCH", "/whoami"),
        ("POST", "/files/a"),
        ("GET", "/nothing"),
        ("GET", "/file"),  # not under /files/
        ("GET", "/files"),  # the prefix is /files/
        ("TRACE", "/whoami"),
    ]:
        answer = await site.fetch(path, method=method)
        assert answer.status_code == 404, (method, path)
        assert answer.text == "No matching routes found"


async def test_a_handler_that_raises_is_a_500_that_says_nothing(site: TestBackend) -> None:
    answer = await site.fetch("/boom")
    assert answer.status_code == 500
    assert answer.text == "Server Error"
    assert "secret" not in answer.text
    wrong = await site.fetch("/notAResponse")
    assert wrong.status_code == 500
    assert wrong.text == "Server Error"


async def test_in_dev_mode_the_500_says_what_failed(database_url: str | None) -> None:
    async with TestBackend(database_url, app=site_app(), dev_mode=True) as t:
        answer = await t.fetch("/boom")
        assert answer.status_code == 500
        assert "RuntimeError: the secret detail of a bug" in answer.text


# ---- what an author gets ----------------------------------------------------------------------


async def test_a_bearer_token_makes_ctx_auth_the_user(site: TestBackend) -> None:
    assert (await site.fetch("/whoami")).json() == {"subject": None}
    ada = await site.sign_up("ada@example.com", "correct horse battery")
    answer = await site.fetch("/whoami", headers={"Authorization": f"Bearer {await ada.jwt()}"})
    assert answer.json() == {"subject": ada.user_id}


async def test_an_action_runs_mutations_and_queries(site: TestBackend) -> None:
    for n in (1, 2):
        answer = await site.fetch("/notes", method="POST", json={"text": f"note {n}"})
        assert answer.json() == {"count": n}
    assert [n["text"] for n in await site.query("notes:list")] == ["note 1", "note 2"]


async def test_exact_beats_prefix_and_the_longest_prefix_wins(site: TestBackend) -> None:
    assert (await site.fetch("/files/a/b.png")).text == "a/b.png"
    assert (await site.fetch("/files/deep/x")).text == "deep:/files/deep/x"
    assert (await site.fetch("/files/")).text == ""


async def test_head_runs_get_without_a_body(site: TestBackend) -> None:
    answer = await site.fetch("/files/a.txt", method="HEAD")
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-type"].startswith("text/plain")


async def test_cors_is_the_apps_own(site: TestBackend) -> None:
    answer = await site.fetch(
        "/notes",
        method="OPTIONS",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    plain = await site.fetch("/whoami", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


async def test_the_main_origin_serves_them_under_http(site: TestBackend) -> None:
    answer = await site.fetch("http://testserver/http/files/a/b")
    assert answer.text == "a/b"  # the handler sees the site's path
    assert (await site.fetch("http://testserver/http/nothing")).status_code == 404


async def test_an_app_without_a_router_answers_404(basic: TestBackend) -> None:
    answer = await basic.fetch("/anything", method="POST", body=b"{}")
    assert answer.status_code == 404


# ---- the router itself ------------------------------------------------------------------------


@http_action
async def _ok(ctx: ActionCtx, request: Request) -> Response:
    return Response()


def test_the_router_refuses_what_convex_refuses() -> None:
    http = HttpRouter()
    http.route(path="/a", method="GET", handler=_ok)
    with pytest.raises(TypeError, match="already routed"):
        http.route(path="/a", method="GET", handler=_ok)
    http.route(path="/a", method="POST", handler=_ok)  # another method is another route
    with pytest.raises(TypeError, match="HEAD"):
        http.route(path="/b", method="HEAD", handler=_ok)
    with pytest.raises(TypeError, match="routable"):
        http.route(path="/b", method="CONNECT", handler=_ok)
    with pytest.raises(TypeError, match="start with a /"):
        http.route(path="b", method="GET", handler=_ok)
    with pytest.raises(TypeError, match="end with a /"):
        http.route(path_prefix="/b", method="GET", handler=_ok)
    with pytest.raises(TypeError, match="either"):
        http.route(path="/c", path_prefix="/c/", method="GET", handler=_ok)
    with pytest.raises(TypeError, match="@http_action"):
        http.route(path="/c", method="GET", handler=_ok.handler)  # type: ignore[arg-type]
    http.route(pathPrefix="/p/", method="GET", handler=_ok)  # Convex's spelling
    with pytest.raises(TypeError, match="already routed"):
        http.route(path_prefix="/p/", method="GET", handler=_ok)
    assert http.routes() == [("GET", "/a"), ("GET", "/p/*"), ("POST", "/a")]
    match = http.lookup("/p/x", "HEAD")
    assert match is not None
    assert (match.method, match.route) == ("GET", "/p/*")
    assert http.lookup("/p", "GET") is None
