"""The real server process (``python -m backend serve`` and ``dev``): what its logs keep, and
what it refuses to start with."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.assembly import assemble
from backend.config import ConfigurationError, Settings
from backend.http.serve import RedactSecrets, redact_query
from tests.support.live_server import free_port

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "correct horse battery"
CODE = re.compile(r"\b(\d{6})\b")
TOKEN = re.compile(r"[?&]token=([^&\s]+)")


def _environment(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEV_MODE", "SMTP_URL", "SECRET_KEY", "DATABASE_URL", "PUBLIC_URL", "PORT"}
    }
    env.update(
        PYTHONPATH=str(REPO),
        DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'server.sqlite3'}",
        HOST="127.0.0.1",
        PYTHONUNBUFFERED="1",
        **{"SITE_PORT": "0", **extra},  # no second listener unless asked: 3211 may be taken
    )
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    # The server's working directory: its ./data, and the folders `dev` watches for reloads.
    for folder in ("backend", "functions", "schema"):
        (tmp_path / folder).symlink_to(REPO / folder, target_is_directory=True)
    return tmp_path


class Server:
    """A server process whose stdout and stderr (access lines go to stdout) are kept."""

    def __init__(self, command: str, workdir: Path, env: dict[str, str]) -> None:
        self.log_path = workdir / f"{command}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", command],
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # `dev` has a child: signal the whole group
        )

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
        return self.log_path.read_text(errors="replace")


@pytest.fixture(params=["serve", "dev"])
def server(request: pytest.FixtureRequest, workdir: Path) -> Iterator[tuple[str, Server]]:
    port = free_port()
    env = _environment(workdir, DEV_MODE="1", SECRET_KEY="log-test-secret", PORT=str(port))
    migrated = subprocess.run(
        [sys.executable, "-m", "backend", "migrate"],
        cwd=workdir,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    running = Server(request.param, workdir, env)
    try:
        yield f"http://127.0.0.1:{port}", running
    finally:
        running.stop()


async def _wait_until_up(url: str, running: Server) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            assert running.process.poll() is None, running.stop()
            try:
                if (await http.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the server did not come up:\n{running.stop()}")


async def _newest_mail(http: httpx.AsyncClient, to: str) -> str:
    for _ in range(1200):  # a minute: mail is delivered after commit, later on a busy machine
        mails = (await http.get("/api/dev/outbox", params={"to": to})).json()
        if mails:
            return str(mails[0]["text"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no mail to {to}")


async def test_a_started_server_ends_with_the_demo_dashboard_and_outbox_urls(
    server: tuple[str, Server],
) -> None:
    url, running = server
    await _wait_until_up(url, running)
    expected = [
        f"the demo:       {url}/",
        f"the dashboard:  {url}/_dashboard",
        f"the dev outbox: {url}/api/dev/outbox",
    ]
    deadline = time.monotonic() + 60
    while not all(line in running.log_path.read_text() for line in expected):
        assert time.monotonic() < deadline, running.stop()
        await asyncio.sleep(0.1)
    lines = running.stop().splitlines()
    at = lines.index(expected[0])
    assert lines[at - 1] == "ready."
    assert lines[at : at + 3] == expected


async def test_no_code_token_or_oauth_state_reaches_the_servers_log(
    server: tuple[str, Server],
) -> None:
    url, running = server
    await _wait_until_up(url, running)
    origin = {"origin": url}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        # A magic link, requested, read from the dev outbox and followed (its token consumed).
        await http.post(
            "/api/auth/sign-in/magic-link", json={"email": "ada@example.com"}, headers=origin
        )
        link = await _newest_mail(http, "ada@example.com")
        match = TOKEN.search(link)
        assert match is not None
        token = match.group(1)
        followed = await http.get(
            "/api/auth/magic-link/verify", params={"token": token, "callbackURL": "/"}
        )
        assert followed.status_code == 302
        # An OAuth callback's code and state (no such provider here: refused, still logged).
        await http.get(
            "/api/auth/callback/google",
            params={"code": "oauth-code-4f1d9a", "state": "oauth-state-77c2e0"},
        )
        # A step-up email code, mailed through the dev mailbox.
        signed_up = await http.post(
            "/api/auth/sign-up/email",
            json={"email": "bea@example.com", "password": PASSWORD, "name": "Bea"},
            headers=origin,
        )
        session = signed_up.json()["token"]
        jwt = (
            await http.get("/api/auth/convex/token", headers={"authorization": f"Bearer {session}"})
        ).json()["token"]
        sent = await http.post(
            "/api/mutation",
            json={
                "path": "sensitive:sendEmailCode",
                "args": {"action": "account.delete"},
                "format": "json",
            },
            headers={"authorization": f"Bearer {jwt}"},
        )
        assert sent.json()["value"]["ok"] is True, sent.text
        code = CODE.search(await _newest_mail(http, "bea@example.com"))
        assert code is not None
    logged = running.stop()

    # The access log was on (each request has its line), with the secret values taken out.
    assert "GET /api/auth/magic-link/verify?token=[redacted]&callbackURL=%2F" in logged
    assert "GET /api/auth/callback/google?code=[redacted]&state=[redacted]" in logged
    for secret in (token, "oauth-code-4f1d9a", "oauth-state-77c2e0", session, jwt):
        assert secret not in logged
    assert re.search(rf"\b{code.group(1)}\b", logged) is None
    assert "verification code" not in logged  # no mail subject either


def test_a_production_server_without_a_mail_transport_refuses_to_start(workdir: Path) -> None:
    env = _environment(workdir, DEV_MODE="0", SECRET_KEY="prod-secret", PORT=str(free_port()))
    started = subprocess.run(
        [sys.executable, "-m", "backend", "serve"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2
    assert "SMTP_URL must be set when DEV_MODE=0" in started.stderr
    assert "Traceback" not in started.stderr


def test_building_a_production_engine_without_a_mail_transport_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="SMTP_URL"):
        assemble(Settings(dev_mode=False, secret_key="k", smtp_url=None), serving=True)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        assemble(Settings(dev_mode=False, secret_key=None, smtp_url="smtp://mail:25"), serving=True)
    with pytest.raises(ConfigurationError, match="SMTP_URL"):
        Settings(dev_mode=False, secret_key="k", smtp_url="  ").check_can_serve()
    Settings(dev_mode=False, secret_key="k", smtp_url="smtp://mail:25").check_can_serve()
    Settings(dev_mode=True).check_can_serve()  # the dev mailbox is for development


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/verify?token=abc&callbackURL=%2F", "/verify?token=[redacted]&callbackURL=%2F"),
        ("/cb?state=s&code=c", "/cb?state=[redacted]&code=[redacted]"),
        ("/x?access_token=a&client_secret=b&Id-Token=c", None),
        ("/x?to=a%40b.c&page=2", "/x?to=a%40b.c&page=2"),
        ("/x?token=", "/x?token="),
        ("no query at all", "no query at all"),
    ],
)
def test_secret_query_values_are_redacted(line: str, expected: str | None) -> None:
    redacted = redact_query(line)
    if expected is None:
        assert redacted.count("[redacted]") == 3
    else:
        assert redacted == expected


def test_the_filter_rewrites_access_records_before_they_are_formatted() -> None:
    import logging

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/auth/magic-link/verify?token=abc", "1.1", 302),
        None,
    )
    assert RedactSecrets().filter(record) is True
    assert "abc" not in record.getMessage()
