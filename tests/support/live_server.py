"""A real server on loopback for HTTP and WebSocket tests: uvicorn, an ephemeral port, the
app built exactly as ``python -m backend serve`` builds it, on a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette

from backend.assembly import assemble
from backend.auth.passwords import Passwords
from backend.config import Settings
from backend.engine import Engine
from backend.http.app import create_app
from backend.http.serve import server_options
from backend.mail import CaptureTransport
from backend.runtime import FakeClock, Runtime
from backend.storage.database import create_db_engine
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.udf.app import load_app

PATIENCE = 60.0  # seconds a server may take to start, or to stop, on a loaded machine


@dataclass
class LiveServer:
    url: str
    app: Starlette
    engine: Engine
    clock: FakeClock
    mail: CaptureTransport


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def live_server(
    database_url: str | None,
    *,
    schema_module: str = "tests.apps.basic.schema",
    functions_package: str = "tests.apps.basic.functions",
    clock: FakeClock | None = None,
    **settings: Any,
) -> AsyncIterator[LiveServer]:
    port = free_port()
    pg_schema = None
    with tempfile.TemporaryDirectory(prefix="live-") as tmp:
        if database_url is None:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'db.sqlite3'}"
            store = Store(url)
        else:
            url = database_url
            pg_schema = f"live_{uuid.uuid4().hex[:12]}"
            admin = create_db_engine(url)
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{pg_schema}"'))
            await admin.dispose()
            store = Store(url, pg_schema=pg_schema)
        await upgrade(store.engine)
        config = Settings(
            database_url=url,
            host="127.0.0.1",
            port=port,
            dev_mode=settings.pop("dev_mode", True),
            secret_key="live-server-secret",
            # the tests stand in for a reverse proxy on loopback, so they can speak for many
            # client addresses with X-Forwarded-For
            forwarded_allow_ips=settings.pop("forwarded_allow_ips", "127.0.0.1"),
            app_schema=schema_module,
            app_functions=functions_package,
            **settings,
        )
        clock = clock or FakeClock()
        mail = CaptureTransport(runtime=Runtime(clock=clock))
        parts = assemble(
            config,
            store=store,
            app=load_app(schema_module, functions_package),
            runtime=Runtime(clock=clock),
            mail_transport=mail,
            passwords=Passwords(time_cost=1, memory_cost=1024),  # fast sign-ups, tests only
        )
        engine = parts.engine
        report = await deploy(store, engine.code_schema)
        assert report.ok, report.format()
        app = create_app(config, parts=parts)
        options = server_options(config)
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
            )
        )
        task = asyncio.create_task(server.serve())
        try:
            # generous: a loaded machine takes seconds to start (and stop) a server
            deadline = asyncio.get_running_loop().time() + PATIENCE
            while not server.started and not task.done():
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.02)
            assert server.started, "the live server did not start"
            yield LiveServer(f"http://127.0.0.1:{port}", app, engine, clock, mail)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, PATIENCE)
            if pg_schema is not None and database_url is not None:
                admin = create_db_engine(database_url)
                async with admin.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE'))
                await admin.dispose()
