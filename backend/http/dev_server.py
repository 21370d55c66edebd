"""One server of ``python -m backend dev``: a process forked from the supervisor on a save.

The supervisor (``dev.py``) has the engine, the database drivers and the web stack imported
(this module imports them) and never the app; on a save it forks, and the child imports the
app, deploys its schema and serves on the listening socket the supervisor holds, so the old
and the new server share one port and no request finds it closed. The child reports on its
events pipe, one JSON object a line: ``ready`` once it serves, or ``broken`` (the app does not
import: the file, line and offending line) or ``refused`` (the deploy was refused; the report
went to stdout).

With ``explain`` (no good app is serving yet), a child whose app does not load serves an
explanation instead, ``503 {code: "UNAVAILABLE", message}``, so that requests never hang on a
port nobody answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from typing import IO, Any

# What a request needs, imported while the process waits: loading the app is then all that
# is left to do on a save.
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from backend.config import Settings, load_settings
from backend.errors import ErrorCode
from backend.http.app import create_app
from backend.http.serve import log_config, server_options
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.system import system_schema
from backend.udf.app import App, load_app


def describe_failure(exc: BaseException, roots: list[Path]) -> str:
    """One short message: where the app broke (file:line), what broke, and the line itself.
    The frame shown is the last one in the app's own files (``roots``), else the last."""
    if isinstance(exc, SyntaxError) and exc.filename:
        filename, line, text = exc.filename, exc.lineno, exc.text
        what = f"{type(exc).__name__}: {exc.msg}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        inside = [f for f in frames if any(_within(f.filename, root) for root in roots)]
        what = f"{type(exc).__name__}: {exc}"
        if not frames:
            return f"dev: the app does not load: {what}"
        chosen = (inside or frames)[-1]
        filename, line, text = chosen.filename, chosen.lineno, chosen.line
    shown = _relative(filename)
    source = (text or "").strip()
    return f"dev: {shown}:{line}: {what}" + (f"\n    {source}" if source else "")


def _within(filename: str, root: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _relative(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return filename


def app_roots(settings: Settings) -> list[Path]:
    """The app's schema and functions, as files or folders."""
    out: list[Path] = []
    for module in (settings.app_schema, settings.app_functions):
        base = Path.cwd().joinpath(*module.split("."))
        out.extend(p for p in (base, base.with_suffix(".py")) if p.exists())
    return out


def _explanation(message: str) -> Starlette:
    async def unavailable(_request: Request) -> JSONResponse:
        code = ErrorCode.UNAVAILABLE
        return JSONResponse({"code": code, "message": message}, status_code=code.status)

    async def refuse_socket(websocket: WebSocket) -> None:
        await websocket.close(code=1011, reason="the app does not load")

    return Starlette(
        routes=[
            Route("/{path:path}", unavailable, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            WebSocketRoute("/{path:path}", refuse_socket),
        ]
    )


class _Events:
    def __init__(self, fd: int) -> None:
        self._out: IO[str] = os.fdopen(fd, "w", buffering=1)

    def send(self, event: str, **fields: Any) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()


async def _deploy(settings: Settings, app: App, *, upgrade_first: bool) -> bool:
    store = Store(settings.database_url, pg_schema=settings.database_schema)
    try:
        if upgrade_first:
            await upgrade(store.engine)
        report = await deploy(store, app.schema.merged(system_schema()), progress=print)
    finally:
        await store.close()
    if report.built or not report.ok or report.refusals:
        print(report.format(), flush=True)
    return report.ok


async def _serve(asgi: Any, settings: Settings, sock: socket.socket, events: _Events) -> None:
    config = uvicorn.Config(
        asgi,
        log_level="info",
        log_config=log_config(),
        timeout_graceful_shutdown=3,
        **server_options(settings),
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.005)
        events.send("ready")

    announcing = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcing.cancel()


def run(listener_fd: int, events_fd: int, *, explain: bool, upgrade_first: bool) -> int:
    """Load the app on disk, deploy it and serve it on the socket ``listener_fd`` (until
    SIGINT), reporting on ``events_fd``; called in a process forked from the supervisor."""
    events = _Events(events_fd)
    sock = socket.socket(fileno=os.dup(listener_fd))
    # the app's files are read from source: a bytecode cache can miss a save made within
    # the second of the one before it (it keys on the whole-second mtime and the size)
    sys.dont_write_bytecode = True
    sys.pycache_prefix = os.path.join(tempfile.gettempdir(), "backend-dev-reads-no-bytecode")
    settings = load_settings()
    sys.path.insert(0, str(Path.cwd()))
    asgi: Any
    try:
        app = load_app(settings.app_schema, settings.app_functions)
    except BaseException as exc:  # whatever the app's import raised, the author sees where
        message = describe_failure(exc, app_roots(settings))
        events.send("broken", message=message)
        if not explain:
            return 1
        asgi = _explanation(message)
    else:
        if not asyncio.run(_deploy(settings, app, upgrade_first=upgrade_first)):
            events.send("refused")
            if not explain:
                return 1
            asgi = _explanation("the app's schema was refused: see the dev server's output")
        else:
            from backend.assembly import assemble

            asgi = create_app(settings, parts=assemble(settings, serving=True, app=app))
    asyncio.run(_serve(asgi, settings, sock, events))
    return 0
