"""``python -m backend env`` against a running server: a subscribed client sees the new value
of a variable its query read, pushed live, with no restart; the CLI never prints a value it
was not asked for."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from convex import ConvexClient

from tests.clients.server import REPO, ServerProcess

pytestmark = pytest.mark.timeout(120)


def env_cli(
    server: ServerProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "DATABASE_URL": server.database_url,
        "SECRET_KEY": "clients-test-secret",
        "APP_SCHEMA": "tests.apps.clients.schema",
        "APP_FUNCTIONS": "tests.apps.clients.functions",
    }
    schema = server._pg_schema
    if schema is not None:
        environment["DATABASE_SCHEMA"] = schema
    else:
        environment.pop("DATABASE_SCHEMA", None)
    return subprocess.run(
        [sys.executable, "-m", "backend", "env", *args],
        cwd=REPO,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_variable_set_from_the_cli_reaches_a_live_query(server: ServerProcess) -> None:
    env_cli(server, "remove", "GREETING")
    client = ConvexClient(server.url)
    updates = client.subscribe("messages:greeting", {})
    assert next(updates) == "hello"
    done = env_cli(server, "set", "GREETING", "bonjour")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "set GREETING"
    started = time.monotonic()
    assert next(updates) == "bonjour"
    assert time.monotonic() - started < 10
    # a secret from stdin, kept out of argv and of the shell's history
    done = env_cli(server, "set", "GREETING", stdin="from stdin\n")
    assert done.returncode == 0, done.stderr
    assert "from stdin" not in done.stdout
    assert next(updates) == "from stdin"
    assert env_cli(server, "get", "GREETING").stdout == "from stdin\n"
    assert "GREETING=from stdin" in env_cli(server, "list").stdout.splitlines()
    assert env_cli(server, "remove", "GREETING").returncode == 0
    assert next(updates) == "hello"
    assert env_cli(server, "get", "GREETING").returncode == 1
    updates.unsubscribe()


def test_the_cli_refuses_a_bad_name_without_a_traceback(server: ServerProcess) -> None:
    done = env_cli(server, "set", "1-bad", "x")
    assert done.returncode == 2
    assert done.stderr.startswith("error: an environment variable's name")
