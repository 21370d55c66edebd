"""Serving the app with uvicorn (``python -m backend serve`` / ``dev``)."""

from __future__ import annotations

import gc
from typing import Any

import uvicorn

from backend.config import Settings


def server_options(settings: Settings | None = None) -> dict[str, Any]:
    """The uvicorn options every server of ours uses (benchmarks and test servers too)."""
    return {
        "proxy_headers": False,
        "ws_max_size": 16 * 1024 * 1024,
        # per-message deflate costs ~40 KB of zlib state per socket and compresses every
        # Transition once per subscriber; off unless WS_COMPRESSION=1 (BENCHMARKS.md).
        "ws_per_message_deflate": bool(settings and settings.ws_compression),
        "backlog": 2048,
    }


def tune_gc() -> None:
    """Collect the young generation less often: a server holds many long-lived objects per
    connection, and frequent collections of them stall every socket at once."""
    gc.collect()
    gc.freeze()  # what exists at start-up (modules, the app) is never garbage
    gc.set_threshold(50_000, 20, 20)


def serve_forever(
    settings: Settings, *, host: str | None = None, port: int | None = None, reload: bool = False
) -> int:
    """Serve until interrupted; Ctrl-C stops cleanly (the scheduler and database close)."""
    tune_gc()
    uvicorn.run(
        "backend.http.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        reload_dirs=["backend", settings.app_functions, settings.app_schema] if reload else None,
        log_level="info",
        **server_options(settings),
    )
    return 0
