"""The site origin's own listener (``SITE_PORT``): the app's HTTP actions at ``/``.

It runs inside the main server's process and event loop, beside the main port, on the same
engine, started and stopped by the main app's lifespan: one process, one engine, two origins,
as self-hosted Convex serves ``:3210`` and ``:3211``. Its requests pass the same guards on how
a body arrives and carry the same security headers; CORS is left to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from backend.config import Settings
from backend.http.request_body import RequestBodyGuard
from backend.http.security_headers import SecurityHeaders

log = logging.getLogger("backend.http.site")


def site_app(actions: ASGIApp, settings: Settings) -> ASGIApp:
    return SecurityHeaders(RequestBodyGuard(actions, timeout=settings.body_timeout))


class _InnerServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the main one (which stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SiteListener:
    """A uvicorn server for the site origin, on ``settings.site_port`` (or on ``sock``)."""

    def __init__(
        self, actions: ASGIApp, settings: Settings, *, sock: socket.socket | None = None
    ) -> None:
        from backend.http.serve import server_options

        options = server_options(settings)
        options.pop("backlog", None)
        config = uvicorn.Config(
            site_app(actions, settings),
            host=settings.host,
            port=settings.site_port,
            lifespan="off",
            log_config=None,
            access_log=False,
            **options,
        )
        self.server = _InnerServer(config)
        self.sock = sock
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int | None:
        servers = getattr(self.server, "servers", None) or []
        for server in servers:
            for bound in server.sockets:
                return int(bound.getsockname()[1])
        return None

    async def start(self) -> None:
        sockets = [self.sock] if self.sock is not None else None
        self._task = asyncio.create_task(self.server.serve(sockets=sockets), name="site")
        while not self.server.started:
            if self._task.done():
                await self._task  # raises why it could not start (a port in use)
                raise RuntimeError("the site listener stopped before it was ready")
            await asyncio.sleep(0.01)
        log.info("HTTP actions at the site origin on port %s", self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
