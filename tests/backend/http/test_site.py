"""The real server process answers HTTP actions at the site origin's own port and under
``/http/`` on the main one, and serves file storage's routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backend.http.test_serve import Server, _environment, _wait_until_up, workdir
from tests.support.live_server import free_port

__all__ = ["workdir"]  # the fixture, shared


def migrate(workdir: Path, env: dict[str, str]) -> None:
    migrated = subprocess.run(
        [sys.executable, "-m", "backend", "migrate"],
        cwd=workdir,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr


class SiteServer(Server):
    """``python -m backend serve --site-port N``."""

    def __init__(self, workdir: Path, env: dict[str, str], site_port: int) -> None:
        self.log_path = workdir / "serve.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--site-port", str(site_port)],
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_serve_opens_the_site_origin_beside_the_main_port(workdir: Path) -> None:
    port, site_port = free_port(), free_port()
    env = _environment(
        workdir,
        DEV_MODE="1",
        SECRET_KEY="site-test-secret",
        PORT=str(port),
        STORAGE_DIR=str(workdir / "files"),
    )  # SITE_PORT=0 there: the command line's --site-port wins
    migrate(workdir, env)
    running = SiteServer(workdir, env, site_port)
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_until_up(url, running)
        async with httpx.AsyncClient(timeout=30) as http:
            # the demo app routes nothing: the router's own 404, from both origins
            site = await http.post(f"http://127.0.0.1:{site_port}/postMessage", content=b"{}")
            assert (site.status_code, site.text) == (404, "No matching routes found")
            main = await http.post(f"{url}/http/postMessage", content=b"{}")
            assert (main.status_code, main.text) == (404, "No matching routes found")
            upload = await http.post(f"{url}/api/storage/upload?token=guess", content=b"x")
            assert upload.status_code == 401
            assert upload.json()["code"] == "INVALID_TOKEN"
    finally:
        log = running.stop()
    assert "token=guess" not in log  # the upload token is redacted from the access log


async def test_another_blob_store_is_plugged_in_by_configuration_alone(tmp_path: Path) -> None:
    from backend.config import ConfigurationError, Settings
    from backend.files.service import FileStorage
    from backend.http.app import create_app
    from backend.storage.deploy import deploy
    from backend.storage.migrate import upgrade
    from tests.support.blob_stores import CountingBlobs

    common: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        "dev_mode": True,
        "secret_key": "blob-store-secret",
        "storage_dir": str(tmp_path / "files"),
        "web_dir": str(tmp_path / "no-web"),
    }
    settings = Settings(
        **common,
        storage_backend="tests.support.blob_stores:make",
        app_schema="tests.apps.site.schema",
        app_functions="tests.apps.site.functions",
    )
    app = create_app(settings)
    engine = app.state.engine
    blobs = engine.services.get(FileStorage).blobs
    assert isinstance(blobs, CountingBlobs)
    await upgrade(engine.store.engine)
    assert (await deploy(engine.store, engine.code_schema)).ok
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:3210"
        ) as http,
    ):
        made = await http.post("/api/mutation", json={"path": "files:upload_url", "args": {}})
        url = made.json()["value"]
        stored = await http.post(url, content=b"counted", headers={"content-type": "text/plain"})
        assert stored.status_code == 200, stored.text
    assert (blobs.writes, blobs.inner.root.is_dir()) == (1, True)
    for wrong in ("tests.support.blob_stores:not_a_store", "no-colon"):
        with pytest.raises(ConfigurationError):
            create_app(Settings(**common, storage_backend=wrong))
