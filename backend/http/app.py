"""The ASGI app: Convex's HTTP API and sync WebSocket over one engine, plus the demo page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend.config import Settings, load_settings
from backend.engine import Engine
from backend.http.function_api import handle_call
from backend.mail import DevOutboxTransport
from backend.runtime import Runtime
from backend.scheduler import SchedulerWorker
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.udf.app import load_app

log = logging.getLogger("backend.http")


def build_engine(settings: Settings, runtime: Runtime | None = None) -> Engine:
    sys.path.insert(0, str(Path.cwd()))
    app = load_app(settings.app_schema, settings.app_functions)
    return Engine(
        Store(settings.database_url),
        app,
        system_schema=system_schema(),
        system_functions=system_functions(),
        runtime=runtime,
        dev_mode=settings.dev_mode,
        mail_transport=DevOutboxTransport(),
    )


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Starlette:
    settings = settings or load_settings()
    engine = engine or build_engine(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        worker = SchedulerWorker(engine)
        task = asyncio.create_task(worker.run_forever(), name="scheduler")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.store.close()

    async def call(request: Request) -> Response:
        kind = request.path_params["kind"]
        return await handle_call(request, engine, kind, None)

    async def health(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes: list[Any] = [
        Route("/api/{kind:str}", call, methods=["POST"]),
        Route("/api/health", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.engine = engine
    app.state.settings = settings
    return app
