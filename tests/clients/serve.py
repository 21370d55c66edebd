"""The server the official-client tests talk to, as a process of its own.

    python -m tests.clients.serve --port P --database-url URL [--pg-schema S] --record FILE

It must be a process: the official Python client holds the GIL while it waits for the server
(its Rust core blocks inside the call), so a server in the test's own process would never get
to answer. The app is built as ``python -m backend serve`` builds it, on the system clock (the
client's inactivity timer and the server's pings are real), over a database that outlives the
process, so stopping and starting it again is a real restart. Every WebSocket text frame, in
both directions, is appended to ``--record`` as one JSON line, for the wire-conformance checks.
It prints ``READY`` once it listens, and stops cleanly on SIGTERM.

Test-only: nothing here is part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import IO, Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.assembly import assemble
from backend.auth.passwords import Passwords
from backend.config import Settings
from backend.http.app import create_app
from backend.http.serve import server_options
from backend.mail import CaptureTransport
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.udf.app import load_app

SCHEMA = "tests.apps.clients.schema"
FUNCTIONS = "tests.apps.clients.functions"


class FrameRecorder:
    """ASGI middleware: appends every text frame of every WebSocket to a JSON-lines file."""

    def __init__(self, app: ASGIApp, out: IO[str], run: str) -> None:
        self.app = app
        self.out = out
        self.ids = (f"{run}-{n}" for n in itertools.count())

    def _write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        connection = next(self.ids)
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        self._write(
            {
                "conn": connection,
                "event": "open",
                "path": scope["path"],
                "origin": origin.decode("latin-1") if origin else None,
            }
        )

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive" and message.get("text") is not None:
                self._write({"conn": connection, "dir": "in", "text": message["text"]})
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "websocket.send" and message.get("text") is not None:
                self._write({"conn": connection, "dir": "out", "text": message["text"]})
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            self._write({"conn": connection, "event": "close"})


async def build(args: argparse.Namespace, record: IO[str]) -> uvicorn.Server:
    store = Store(args.database_url, pg_schema=args.pg_schema)
    await upgrade(store.engine)
    config = Settings(
        database_url=args.database_url,
        host="127.0.0.1",
        port=args.port,
        dev_mode=True,
        secret_key="clients-test-secret",
        app_schema=SCHEMA,
        app_functions=FUNCTIONS,
        web_dir=str(Path(args.record).parent / "no-web"),
    )
    parts = assemble(
        config,
        store=store,
        app=load_app(SCHEMA, FUNCTIONS),
        mail_transport=CaptureTransport(),
        passwords=Passwords(time_cost=1, memory_cost=1024),  # fast sign-ups, tests only
    )
    report = await deploy(store, parts.engine.code_schema)
    if not report.ok:
        raise SystemExit(report.format())
    app = create_app(config, parts=parts)
    options = server_options(config)
    return uvicorn.Server(
        uvicorn.Config(
            FrameRecorder(app, record, args.run),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            lifespan="on",
            **options,
        )
    )


async def main(args: argparse.Namespace, record: IO[str]) -> None:
    server = await build(args, record)
    serving = asyncio.create_task(server.serve())
    for _ in range(3000):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.02)
    if server.started:
        print("READY", flush=True)
    await serving


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pg-schema", default=None)
    parser.add_argument("--record", required=True)
    parser.add_argument("--run", default="0")
    arguments = parser.parse_args(sys.argv[1:])
    with open(arguments.record, "a", encoding="utf-8") as frames:
        asyncio.run(main(arguments, frames))
