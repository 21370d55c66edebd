"""Serving the app's HTTP actions (``functions/http.py``'s ``HttpRouter``).

They answer at the *site origin*, as Convex's do at ``<name>.convex.site``: a second listener
(``SITE_PORT``, 3211 by default, as self-hosted Convex) and, on the main port, under ``/http/``
(``/http/postMessage`` is the site's ``/postMessage``; the handler sees the site's path).

- Routing is the router's (Convex's): no route for the path and method is 404, as Convex
  answers (``No matching routes found``). ``HEAD`` runs the ``GET`` route without the body.
- A path with ``.`` or ``..`` segments (after percent-decoding: ``%2F..%2F`` is one too) is
  refused with 400 before any routing: a prefix route never sees a path that climbs out of it.
  Clients normalise such paths before sending, so only a crafted request has one.
- ``Authorization: Bearer <token>`` is checked as the HTTP function API checks it: the
  engine's own session JWTs; a bad, forged or expired token is ``401 UNAUTHENTICATED`` and the
  handler does not run (a webhook's own secret goes in another header). No header: nobody.
- The body is limited (``HTTP_ACTION_MAX_BODY``, 20 MiB as on Convex): a larger declared
  ``Content-Length`` is refused at once, and a streamed body is cut off as it passes the limit;
  both ``413 PAYLOAD_TOO_LARGE``.
- CORS is the app's to answer, as on Convex (its ``OPTIONS`` routes and headers); nothing is
  added here.
- A handler that raises, or returns anything but a Starlette ``Response``, is a 500 whose body
  says only ``Server Error`` (with the exception in ``DEV_MODE``); the detail is logged. The
  database out of reach is not the handler's bug: ``503 UNAVAILABLE`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Final
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from backend.engine import Engine
from backend.errors import SERVER_ERROR, ConvexError, ErrorCode
from backend.http.errors import error_response, refused
from backend.storage.store import StoreUnavailable
from backend.sync.identity import NO_TOKENS, TokenRejected, TokenVerifier
from backend.udf.calls import function_call
from backend.udf.context import Identity
from backend.udf.http_router import router_of

log = logging.getLogger("backend.http.actions")

DEFAULT_MAX_BODY: Final = 20 * 1024 * 1024
SITE_MOUNT: Final = "/http"


class _BodyTooLarge(Exception):
    pass


def has_dot_segments(path: str) -> bool:
    decoded = unquote(path)
    return any(part in (".", "..") for part in decoded.replace("\\", "/").split("/")) or (
        "\x00" in decoded
    )


async def identity_of(request: Request, verifier: TokenVerifier | None) -> Identity | None:
    """The caller behind ``Authorization: Bearer``; ``UNAUTHENTICATED`` for a bad one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ConvexError(ErrorCode.UNAUTHENTICATED, "Authorization must be 'Bearer <token>'")
    if verifier is None:
        raise ConvexError(ErrorCode.UNAUTHENTICATED, NO_TOKENS)
    try:
        return (await verifier.verify(token.strip())).identity
    except TokenRejected as rejected:
        raise ConvexError(ErrorCode.UNAUTHENTICATED, rejected.message) from None


class HttpActions:
    """The ASGI app of the site origin. ``mount`` is the path prefix it is served under
    (``/http`` on the main port, ``""`` on the site's own listener)."""

    def __init__(
        self,
        engine: Engine,
        verifier: TokenVerifier | None,
        *,
        mount: str = "",
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.engine = engine
        self.verifier = verifier
        self.mount = mount
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no WebSocket at the site origin (lifespan is the main app's)
        path: str = scope["path"]
        if self.mount:
            path = path[len(self.mount) :] or "/"
            raw: bytes = scope.get("raw_path") or b""
            mount = self.mount.encode()
            raw = (raw[len(mount) :] if raw.startswith(mount) else path.encode()) or b"/"
            scope = dict(scope, path=path, raw_path=raw, root_path="")
        response = await self._answer(scope, receive)
        if scope["method"] == "HEAD":
            response = _without_body(response)
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        path = scope["path"]
        if has_dot_segments(scope.get("raw_path", b"").decode("latin-1") or path):
            return refused(ErrorCode.INVALID_ARGUMENT, "The path has '.' or '..' segments")
        try:
            return await self._route(scope, receive)
        except StoreUnavailable as outage:  # checking the caller's token needs the database
            return error_response(outage)

    async def _route(self, scope: Scope, receive: Receive) -> Response:
        path, method = scope["path"], scope["method"]
        router = router_of(self.engine.app.extensions)
        match = router.lookup(path, method) if router is not None else None
        if match is None:
            return PlainTextResponse("No matching routes found", status_code=404)
        request = Request(scope, self._limited(scope, receive))
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return self._too_large()
        try:
            identity = await identity_of(request, self.verifier)
        except ConvexError as error:
            return error_response(error)
        ctx = self.engine.action_context(identity)
        try:
            await self.engine.environment.fresh()
            # logged as every function call is (``python -m backend logs``), by its route
            with function_call(
                f"{method} {match.route}", "httpAction", identity, recent=self.engine.recent_calls
            ):
                response = await match.action(ctx, request)
        except _BodyTooLarge:
            return self._too_large()
        except StoreUnavailable as outage:  # not the handler's bug: the caller may retry
            return error_response(outage)
        except Exception as exc:
            return self._failed(match.route, exc)
        if not isinstance(response, Response):
            return self._failed(
                match.route, TypeError(f"returned {type(response).__name__}, not a Response")
            )
        return response

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        return receive_limited

    def _too_large(self) -> Response:
        return refused(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"The request body is larger than {self.max_body} bytes",
            headers={"connection": "close"},
        )

    def _failed(self, route: str, exc: BaseException) -> Response:
        log.error("HTTP action %s failed", route, exc_info=exc)
        message = SERVER_ERROR
        if self.engine.dev_mode:
            where = traceback.extract_tb(exc.__traceback__)
            at = f" at {where[-1].filename}:{where[-1].lineno}" if where else ""
            message = f"{SERVER_ERROR}: {type(exc).__name__}: {exc}{at}"
        return PlainTextResponse(message, status_code=500)


def _without_body(response: Response) -> Response:
    """The answer to ``HEAD``: the ``GET`` answer's status and headers, no body."""
    stripped = Response(status_code=response.status_code)
    stripped.raw_headers = list(response.raw_headers)
    stripped.background = response.background
    return stripped
