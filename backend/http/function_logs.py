"""``GET /_dashboard/api/function_logs``: the dashboard's live function log.

``?cursor=N&wait=SECONDS`` answers ``{"entries": [...], "cursor": M}``: the records of calls
that ended after cursor ``N``, oldest first, from the engine's ring of this process's last
calls (``backend/udf/recent_calls.py``; records from this process only). Without ``cursor``
it answers the recent history at once. With ``wait`` (at most ``MAX_WAIT`` seconds) it is a
long poll: it answers as soon as a newer record exists, or with no entries when the wait is
over. ``missed`` counts records the ring dropped before the reader came back; ``reset`` says
the cursor is from before this server started (the entries are then all it keeps).

Only the admin key opens it, in ``Authorization: Convex <admin key>`` and nowhere else: not a
cookie (so no other site's page can make a browser send it), not the query string (which
proxies and access logs keep). Missing, it is 401 ``UNAUTHENTICATED``; wrong, 403
``FORBIDDEN``; a malformed ``cursor`` or ``wait``, 400 ``INVALID_ARGUMENT``. Where the
dashboard is not served, the route does not exist (404, as every path under it).

A record holds no argument and no return value of the call (``backend/udf/calls.py``).
A long poll ends early when the client goes away, and at once when the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from backend.engine import Engine
from backend.errors import ErrorCode
from backend.http.errors import refused
from backend.sync.admin import AdminKey
from backend.udf.recent_calls import Page

MAX_WAIT: Final = 30.0
MAX_CURSOR: Final = 2**53 - 1  # what a JavaScript number holds exactly
NO_STORE: Final = {"cache-control": "no-store"}
SCHEME: Final = "convex"

_CURSOR = re.compile(r"[0-9]{1,16}")
_SECONDS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")


class _BadParameter(Exception):
    pass


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _BadParameter(f"`{name}` is given more than once")
    return values[0] if values else None


def _cursor(text: str | None) -> int | None:
    if text is None:
        return None
    if not _CURSOR.fullmatch(text) or int(text) > MAX_CURSOR:
        raise _BadParameter(f"`cursor` is a whole number from 0 to {MAX_CURSOR}")
    return int(text)


def _wait(text: str | None) -> float:
    if text is None:
        return 0.0
    if not _SECONDS.fullmatch(text) or float(text) > MAX_WAIT:
        raise _BadParameter(f"`wait` is a number of seconds from 0 to {MAX_WAIT:g}")
    return float(text)


def _refusal(request: Request, key: AdminKey | None) -> Response | None:
    header = request.headers.get("authorization")
    if not header:
        return refused(
            ErrorCode.UNAUTHENTICATED, "The function log needs 'Authorization: Convex <admin key>'"
        )
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != SCHEME or not presented.strip():
        return refused(ErrorCode.UNAUTHENTICATED, "Authorization must be 'Convex <admin key>'")
    if key is None or not key.matches(presented.strip()):
        return refused(ErrorCode.FORBIDDEN, "Invalid admin key")
    return None


async def _gone(receive: Receive) -> None:
    """Return when the client has gone away (a GET's body is empty: nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def function_logs_endpoint(engine: Engine) -> Callable[[Request], Awaitable[Response]]:
    """The route's handler over ``engine``'s ring (and its admin key, looked up per request so
    it is the very key the sync socket checks)."""

    async def function_logs(request: Request) -> Response:
        denied = _refusal(request, engine.services.find(AdminKey))
        if denied is not None:
            return denied
        try:
            cursor = _cursor(_one(request, "cursor"))
            seconds = _wait(_one(request, "wait"))
        except _BadParameter as bad:
            return refused(ErrorCode.INVALID_ARGUMENT, str(bad))
        ring = engine.recent_calls
        if cursor is None or seconds == 0:
            return JSONResponse(ring.after(cursor).as_json(), headers=NO_STORE)
        waiting = asyncio.ensure_future(ring.wait(cursor, seconds, engine.runtime.timers))
        gone = asyncio.ensure_future(_gone(request.receive))
        try:
            await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, gone):
                task.cancel()
            for task in (waiting, gone):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if waiting.cancelled():
            return Response(status_code=204)  # the client left: nobody reads this
        page: Page = waiting.result()
        return JSONResponse(page.as_json(), headers=NO_STORE)

    return function_logs


__all__ = ["MAX_WAIT", "function_logs_endpoint"]
