"""Serving the app with uvicorn (``python -m backend serve`` / ``dev``)."""

from __future__ import annotations

import uvicorn

from backend.config import Settings


def serve_forever(
    settings: Settings, *, host: str | None = None, port: int | None = None, reload: bool = False
) -> int:
    """Serve until interrupted; Ctrl-C stops cleanly (the scheduler and database close)."""
    uvicorn.run(
        "backend.http.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        reload_dirs=["backend", settings.app_functions, settings.app_schema] if reload else None,
        log_level="info",
        proxy_headers=False,
        ws_max_size=16 * 1024 * 1024,
    )
    return 0
