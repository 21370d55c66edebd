"""A real server process for the official clients, restartable over the same database.

``ServerProcess`` runs ``tests/clients/serve.py`` (see there why it must be a process) over a
SQLite file or a private PostgreSQL schema that outlive it: ``restart()`` stops the process
(every socket drops, the port goes dark) and starts a new one on the same port and data, as a
redeploy does. ``connections()`` reads back every WebSocket frame the processes recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import text

from backend.storage.database import create_db_engine
from tests.support.live_server import free_port

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@dataclass
class Frame:
    direction: Literal["in", "out"]  # "in": from the client
    text: str


@dataclass
class Connection:
    """One recorded WebSocket: its path, the browser's Origin, every text frame in order."""

    id: str
    path: str
    origin: str | None
    frames: list[Frame] = field(default_factory=list)
    closed: bool = False

    def sent(self) -> list[dict[str, Any]]:
        """The messages the server sent, decoded, in order."""
        return [json.loads(f.text) for f in self.frames if f.direction == "out"]

    def received(self) -> list[dict[str, Any]]:
        return [json.loads(f.text) for f in self.frames if f.direction == "in"]


class ServerProcess:
    def __init__(self, database_url: str | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="clients-")
        self.record = Path(self._tmp.name) / "frames.jsonl"
        self._pg_schema: str | None = None
        if database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{Path(self._tmp.name) / 'db.sqlite3'}"
        else:
            self.database_url = database_url
            self._pg_schema = f"clients_{uuid.uuid4().hex[:12]}"
            asyncio.run(self._schema(f'CREATE SCHEMA "{self._pg_schema}"'))
        self._process: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> None:
        command = [
            sys.executable,
            "-m",
            "tests.clients.serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--record",
            str(self.record),
            "--run",
            str(self.starts),
        ]
        if self._pg_schema is not None:
            command += ["--pg-schema", self._pg_schema]
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._process = process
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(process.stdout.readline() if process.stdout else ""),
            daemon=True,
        )
        reader.start()
        reader.join(timeout)
        if not lines or lines[0].strip() != "READY":
            process.kill()
            raise RuntimeError(f"the server did not start (exit code {process.poll()})")
        self.starts += 1

    def stop(self, timeout: float = 30) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._pg_schema is not None:
            asyncio.run(self._schema(f'DROP SCHEMA IF EXISTS "{self._pg_schema}" CASCADE'))
        self._tmp.cleanup()

    async def _schema(self, statement: str) -> None:
        admin = create_db_engine(self.database_url)
        try:
            async with admin.begin() as conn:
                await conn.execute(text(statement))
        finally:
            await admin.dispose()

    # ---- what the processes recorded ----------------------------------------------------------

    def connections(self) -> list[Connection]:
        found: dict[str, Connection] = {}
        if not self.record.exists():
            return []
        for line in self.record.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("event") == "open":
                found[record["conn"]] = Connection(record["conn"], record["path"], record["origin"])
            elif record.get("event") == "close":
                found[record["conn"]].closed = True
            else:
                found[record["conn"]].frames.append(Frame(record["dir"], record["text"]))
        return list(found.values())

    def connections_of(self, session_marker: Callable[[Connection], bool]) -> list[Connection]:
        return [c for c in self.connections() if session_marker(c)]

    # ---- accounts -------------------------------------------------------------------------

    def sign_up(self, email: str, password: str = PASSWORD, name: str = "") -> str:
        """A new user's session token (Better Auth's sign-up)."""
        response = httpx.post(
            f"{self.url}/api/auth/sign-up/email",
            json={"email": email, "password": password, "name": name or email.split("@")[0]},
            timeout=30,
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def convex_token(self, session_token: str) -> str:
        """The JWT the Convex clients authenticate with, from ``/api/auth/convex/token``."""
        response = httpx.get(
            f"{self.url}/api/auth/convex/token",
            headers={"Authorization": f"Bearer {session_token}"},
            timeout=30,
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token


@contextlib.contextmanager
def running_server(database_url: str | None) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url)
    try:
        server.start()
        yield server
    finally:
        server.close()


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds} s")
        time.sleep(0.05)
