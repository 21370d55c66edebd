"""DNS rebinding: only the server's own host names are served, and the page's security headers.

A rebound name (attacker.example resolving to 127.0.0.1) lets a page of the attacker's read
what the server at 127.0.0.1 answers, as same-origin; only the ``Host`` header gives it away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.support.live_server import LiveServer, live_server
from tests.support.sync_socket import PASSWORD, ws_url

REBOUND = "attacker.example"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    (tmp_path / "index.html").write_text("<!doctype html><title>demo</title>")
    async with live_server(
        None, allowed_hosts=["app.example", "*.internal.example"], web_dir=str(tmp_path)
    ) as live:
        yield live


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def test_a_rebound_host_cannot_read_the_dev_outbox_or_sign_in(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await http.post(
            "/api/auth/sign-up/email",
            json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"},
        )
        await http.post("/api/auth/sign-in/magic-link", json={"email": "ada@example.com"})
        own = await http.get("/api/dev/outbox", params={"to": "ada@example.com"})
        assert own.status_code == 200
        assert own.json(), "the outbox holds the magic link"

        rebound = {"host": f"{REBOUND}:{port_of(server)}", "origin": f"http://{REBOUND}"}
        outbox = await http.get(
            "/api/dev/outbox", params={"to": "ada@example.com"}, headers=rebound
        )
        sign_in = await http.post(
            "/api/auth/sign-in/email",
            json={"email": "ada@example.com", "password": PASSWORD},
            headers=rebound,
        )
        page = await http.get("/", headers=rebound)
    for response in (outbox, sign_in, page):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "INVALID_HOST"
        assert "token" not in response.text
        assert "set-cookie" not in response.headers


async def test_a_rebound_host_cannot_open_the_sync_socket(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            ws_url(server.url),
            additional_headers={"host": f"{REBOUND}:{port_of(server)}"},
            origin=f"http://{REBOUND}:{port_of(server)}",  # type: ignore[arg-type]
        ):
            pass
    assert refused.value.response.status_code == 400


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "app.example", "a.internal.example"],
)
async def test_own_loopback_and_configured_hosts_are_served(server: LiveServer, host: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get(
            "/api/auth/get-session", headers={"host": f"{host}:{port_of(server)}"}
        )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", ["", "127.0.0.1.attacker.example", "internal.example", "[::2]"])
async def test_other_hosts_are_refused(server: LiveServer, host: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.get("/api/auth/get-session", headers={"host": host})
    assert response.status_code == 400, response.text


async def test_loopback_names_are_served_only_in_dev_mode() -> None:
    async with (
        live_server(None, dev_mode=False, public_url="https://app.example") as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        refused = await http.get("/api/auth/get-session")  # Host: 127.0.0.1:<port>
        served = await http.get("/api/auth/get-session", headers={"host": "app.example"})
        probe = await http.get("/api/health")  # probes address the instance, not the site
    assert refused.status_code == 400
    assert served.status_code == 200
    assert probe.status_code == 200


async def test_the_page_and_the_api_send_the_security_headers(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        page = await http.get("/")
        api = await http.get("/api/auth/get-session")
    assert page.status_code == 200
    for response in (page, api):
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp or "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp or "default-src 'none'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
