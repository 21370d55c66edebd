"""The README's "Your first function", run as written: its files are extracted into a folder
of their own, its test runs with pytest there, and its node client calls the app served from
there by ``python -m backend serve``, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.backend.test_cli import Database, db
from tests.support.live_server import free_port
from tests.support.readme import files_of_the_section

ROOT = Path(__file__).resolve().parents[1]
# pytest, a server and node as processes of their own
pytestmark = pytest.mark.timeout(600)
NODE_MODULES = ROOT / "client_js" / "node_modules"
PATIENCE = 120.0
__all__ = ["db"]


def make_project(root: Path) -> Path:
    project = root / "notes-app"
    for name, text in files_of_the_section().items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (project / "functions" / "__init__.py").write_text("")
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (project / "node_modules").symlink_to(NODE_MODULES)  # the official client, installed
    return project


async def run(cwd: Path, env: dict[str, str], *command: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), PATIENCE)
    assert process.returncode is not None
    return process.returncode, out.decode()


def test_the_section_has_every_piece() -> None:
    files = files_of_the_section()
    assert set(files) == {"schema.py", "functions/notes.py", "test_notes.py", "client.mjs"}
    notes = files["functions/notes.py"]
    assert "SensitiveActions(" in notes
    assert "require_sensitive_action(ctx" in notes
    assert "@query" in notes
    assert "@mutation" in notes
    assert "setAuth(token)" in files["client.mjs"]


async def test_the_section_test_passes_with_the_plugin(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code, out = await run(
        project, env, sys.executable, "-m", "pytest", "-q", "-p", "backend.pytest_plugin"
    )
    assert code == 0, out
    assert "2 passed" in out, out


async def test_the_section_client_calls_the_served_app(db: Database, tmp_path: Path) -> None:
    """Served as the section says, with ``python -m backend dev`` in the folder and nothing
    else set up: no ``DEV_MODE``, no ``SECRET_KEY``, no ``migrate`` first."""
    project = make_project(tmp_path)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEV_MODE", "SECRET_KEY", "SMTP_URL", "APP_SCHEMA", "APP_FUNCTIONS")
    }
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=db.url, PORT=str(port))
    if db.pg_schema is not None:
        env["DATABASE_SCHEMA"] = db.pg_schema
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "backend", "dev"),
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = asyncio.get_running_loop().time() + PATIENCE
        async with httpx.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(f"{url}/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "the server never answered"
                await asyncio.sleep(0.2)
        code, out = await run(project, {**env, "BACKEND_URL": url}, "node", "client.mjs")
        assert code == 0, out
        assert "from node" in out, out
        code, out = await run(
            project,
            {**env, "DEV_MODE": "1"},
            sys.executable,
            *("-m", "backend", "run", "notes:mine", "--as", "ada@example.com"),
        )
        assert code == 0, out
        notes = json.loads(out[out.index("[") :])
        assert [note["body"] for note in notes] == ["from node"]
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 30)
