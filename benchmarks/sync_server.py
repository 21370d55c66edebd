"""The servers ``bench_sync`` starts in their own processes, on 127.0.0.1 only.

``python -m benchmarks.sync_server convex --port P --database FILE [--docs N]`` serves the real
app (``create_app`` over the ``benchmarks.syncapp`` engine, SQLite at ``FILE``, migrated and
seeded with ``N`` documents first) plus benchmark-only routes:

- ``GET /bench/stats``: the process id and the sync coordinator's counters;
- ``GET /bench/ids``: the ids of the seeded documents;
- ``POST /bench/post`` ``{"body"}`` / ``POST /bench/touch`` ``{"id"}``: run ``docs:post`` or
  ``docs:touch`` through ``Engine.run_mutation``; the reply gives the clock reading just before
  the call (``start_ns``) and after it returned (``committed_ns``).

``python -m benchmarks.sync_server plain --port P`` is the baseline: a Starlette WebSocket
route that only accepts sockets and reads (and drops) what they send, and
``POST /bench/push`` ``{"marker", "size"}`` that sends one text message of exactly ``size``
bytes to every open socket, one after another, with nothing in between.

Times are ``now_ns()``, CLOCK_MONOTONIC: one clock for every process on the machine, so the
benchmark can subtract a server's reading from its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from backend.assembly import assemble
from backend.config import Settings
from backend.http.app import create_app
from backend.http.serve import server_options, tune_gc
from backend.storage.database import create_db_engine
from backend.storage.deploy import deploy
from backend.storage.migrate import upgrade
from backend.sync.coordinator import SyncCoordinator
from backend.transactions.transaction import DatabaseWriter, Transaction

HOST = "127.0.0.1"
SEED_BATCH = 500


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds: comparable between processes on one machine."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def settings_for(database: Path) -> Settings:
    return Settings(
        host=HOST,
        database_url=f"sqlite+aiosqlite:///{database}",
        dev_mode=True,
        secret_key="bench-only-secret",  # noqa: S106 - a throwaway key for a throwaway database
        allowed_origins=[],
        app_schema="benchmarks.syncapp.schema",
        app_functions="benchmarks.syncapp.functions",
    )


async def prepare_database(settings: Settings, docs: int) -> list[str]:
    """Migrate the database and insert ``docs`` documents; returns their ids in order."""
    migrator = create_db_engine(settings.database_url)
    try:
        await upgrade(migrator)
    finally:
        await migrator.dispose()
    engine = assemble(settings, serving=True).engine
    report = await deploy(engine.store, engine.code_schema)
    if not report.ok:
        raise RuntimeError(report.format())
    await engine.load_deployment()
    ids: list[str] = []
    try:
        for start in range(0, docs, SEED_BATCH):
            count = min(SEED_BATCH, docs - start)

            async def body(txn: Transaction, start: int = start, count: int = count) -> None:
                db = DatabaseWriter(txn)
                for i in range(start, start + count):
                    ids.append(await db.insert("docs", {"body": f"doc {i}", "n": 0}))

            await engine.write(body, function_path="bench:seed")
    finally:
        await engine.store.close()
    return ids


def convex_app(settings: Settings, ids: list[str]) -> Starlette:
    """The real app, plus the benchmark's routes."""
    parts = assemble(settings, serving=True)
    engine = parts.engine
    app = create_app(settings, parts=parts)
    coordinator: SyncCoordinator = app.state.coordinator

    async def stats(_request: Request) -> Response:
        return JSONResponse(
            {
                "pid": os.getpid(),
                "executions": coordinator.executions,
                "rounds": coordinator.rounds,
                "queries": coordinator.query_count,
            }
        )

    async def seeded(_request: Request) -> Response:
        return JSONResponse(ids)

    async def run(path: str, args: dict[str, Any]) -> Response:
        start = now_ns()
        result = await engine.run_mutation(path, args)
        committed = now_ns()
        return JSONResponse(
            {"start_ns": start, "committed_ns": committed, "value": result.value, "ts": result.ts}
        )

    async def post(request: Request) -> Response:
        return await run("docs:post", {"body": str((await request.json())["body"])})

    async def touch(request: Request) -> Response:
        return await run("docs:touch", {"id": str((await request.json())["id"])})

    # First, ahead of the demo web app mounted at "/", which would answer them with a 404.
    app.router.routes[0:0] = [
        Route("/bench/stats", stats, methods=["GET"]),
        Route("/bench/ids", seeded, methods=["GET"]),
        Route("/bench/post", post, methods=["POST"]),
        Route("/bench/touch", touch, methods=["POST"]),
    ]
    return app


def plain_app() -> Starlette:
    """The baseline: open sockets and a trigger that writes the same bytes to each of them."""
    sockets: set[WebSocket] = set()

    async def sync(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sockets.discard(websocket)

    async def push(request: Request) -> Response:
        start = now_ns()
        order = await request.json()
        marker, size = str(order["marker"]), int(order["size"])
        head = json.dumps({"type": "Transition", "marker": marker, "pad": ""})[:-2]
        payload = head + "x" * max(0, size - len(head) - 2) + '"}'
        sent = 0
        for websocket in list(sockets):
            try:
                await websocket.send_text(payload)
                sent += 1
            except Exception:  # a socket that went away: not this benchmark's concern
                sockets.discard(websocket)
        return JSONResponse({"start_ns": start, "sent_ns": now_ns(), "sent": sent})

    async def stats(_request: Request) -> Response:
        return JSONResponse({"pid": os.getpid(), "connections": len(sockets)})

    return Starlette(
        routes=[
            WebSocketRoute("/api/{version:str}/sync", sync),
            Route("/bench/push", push, methods=["POST"]),
            Route("/bench/stats", stats, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sync_server", description=__doc__)
    parser.add_argument("mode", choices=("convex", "plain"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", type=Path, help="SQLite file (convex mode)")
    parser.add_argument("--docs", type=int, default=0, help="documents to seed (convex mode)")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    if args.mode == "convex":
        if args.database is None:
            parser.error("convex mode needs --database")
        settings = settings_for(args.database)
        ids = asyncio.run(prepare_database(settings, args.docs))
        app = convex_app(settings, ids)
    else:
        app = plain_app()
    # The same WebSocket settings as `python -m backend serve`, for both servers.
    options = {**server_options(), "backlog": 4096}
    config = uvicorn.Config(app, host=HOST, port=args.port, log_level="warning", **options)
    tune_gc()
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
