"""Guards on how a request body arrives: in time, whole, and framed one way only.

Every request body arrives within a deadline, or is answered ``408 REQUEST_TIMEOUT``.

Without one, a client that sends its headers and then a body that never ends (or one byte
every few seconds) holds a connection and a task for as long as it likes; a few thousand such
clients hold the server. The deadline is on the whole body, counted from the moment the
request reaches the app, so trickling does not help. It does not apply once the body is in:
waiting for the client to go away (``http.disconnect``) is not reading a body.

A body that ends early (the client half-closed, or the connection dropped, mid-body) is
``ClientDisconnect`` in Starlette; it is answered 400 here (to a client that is still there to
read it) and logged as what it is, not as a server failure with a traceback.

A request framed two ways (``Transfer-Encoding`` and ``Content-Length`` both) is refused with
400 and a closed connection, as RFC 9112 (section 6.3) allows: a proxy in front that reads the
other framing would see a different request boundary (request smuggling).

What uvicorn covers before a request reaches the app: the header block is limited in size (h11,
16 KB by default) and an idle keep-alive connection is closed after ``timeout_keep_alive`` (5
s). It has no deadline for the header block itself: a client that trickles its headers holds
its connection until it stops. That part of a slow-loris attack is for the reverse proxy in
front of a public server (nginx's ``client_header_timeout``, for one).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import ErrorCode
from backend.http.errors import refused

log = logging.getLogger("backend.http")


class _BodyTimedOut(Exception):
    """The body did not arrive in time (raised out of ``receive``, caught by the middleware)."""


class RequestBodyGuard:
    """``slow_paths`` give the bodies of some path prefixes a longer deadline (a file upload
    to ``/api/storage/``)."""

    def __init__(
        self, app: ASGIApp, timeout: float, slow_paths: dict[str, float] | None = None
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.slow_paths = dict(slow_paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in scope["headers"]}
        if b"transfer-encoding" in names and b"content-length" in names:
            log.info("request framed by both Transfer-Encoding and Content-Length; refused")
            await _coded(
                ErrorCode.INVALID_ARGUMENT,
                "A request must not carry both Transfer-Encoding and Content-Length",
            )(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        timeout = self.timeout
        path = scope.get("path", "")
        for prefix, slow in self.slow_paths.items():
            if path.startswith(prefix):
                timeout = slow
        deadline = loop.time() + timeout
        body_done = False
        started = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_tracked)
        except _BodyTimedOut:
            log.info("request body not received within %.0f s; answered 408", timeout)
            if not started:
                await _coded(
                    ErrorCode.REQUEST_TIMEOUT,
                    f"The request body did not arrive within {timeout:g} seconds",
                )(scope, receive, send)
        except ClientDisconnect:
            log.info("request body ended before it was complete")
            if not started:  # a half-closed client can still read this; a gone one is skipped
                await _coded(
                    ErrorCode.INVALID_ARGUMENT, "The request body ended before it was complete"
                )(scope, receive, send)


def _coded(code: ErrorCode, message: str) -> JSONResponse:
    # the rest of the body is never read, so the connection cannot carry another request
    return refused(code, message, headers={"connection": "close"})
