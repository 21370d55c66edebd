"""Serving the app with uvicorn (``python -m backend serve`` / ``dev``)."""

from __future__ import annotations

import gc
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from backend.config import Settings


class HTTPProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, except for a client that half-closes mid-body.

    uvicorn closes such a connection at once, so the app only learns that the client left and
    the client never hears why. Here the end of input goes to h11, which finds the body
    incomplete, and uvicorn answers that as any other broken framing: 400, then close.
    """

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows a bool
        if self.conn.their_state is not h11.SEND_BODY:
            return None  # between requests or done: close as uvicorn does
        self.conn.receive_data(b"")
        self.handle_events()
        return True  # keep the transport to write the answer (uvicorn closes it after)


def server_options(settings: Settings | None = None) -> dict[str, Any]:
    """The uvicorn options every server of ours uses (benchmarks and test servers too)."""
    return {
        "http": HTTPProtocol,
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
