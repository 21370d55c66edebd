"""``/_dashboard``: the dashboard's page, and in dev the admin key it uses.

Served in dev, or in production when ``ADMIN_KEY`` is set; otherwise every path under
``/_dashboard`` is 404. The page holds no data: everything it shows comes through the sync
socket after it authenticates with the admin key (``backend/sync/admin.py``), and every write
it makes is a system mutation over that socket, never an HTTP request a cookie could carry,
so there is nothing for a cross-site form to forge. In dev the page fetches the key from
``GET /_dashboard/key`` (same-origin only: a fetch from another site is refused, and the Host
check already refuses a rebound name); in production the person opening it types it in.

One HTTP API sits under it, read-only: ``GET /_dashboard/api/function_logs``, the live function
log (``function_logs.py``), which takes the admin key in the ``Authorization`` header only.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from backend.config import Settings
from backend.engine import Engine
from backend.errors import ErrorCode
from backend.http.errors import refused
from backend.http.function_logs import function_logs_endpoint

PATH = "/_dashboard"
NO_STORE = {"cache-control": "no-store"}


async def _not_found(_request: Request) -> Response:
    return refused(ErrorCode.NOT_FOUND, "Not Found")


async def _not_built(_request: Request) -> Response:
    return refused(
        ErrorCode.NOT_FOUND, "The dashboard is not built: run `npm run build` in client_js/"
    )


def dashboard_routes(settings: Settings, engine: Engine) -> list[BaseRoute]:
    key = settings.resolved_admin_key()
    if key is None:
        return [
            Route(PATH, _not_found),
            Route(PATH + "/{rest:path}", _not_found, methods=["GET", "HEAD", "POST", "PUT"]),
        ]

    async def dev_key(request: Request) -> Response:
        # browsers say where a fetch comes from; only the dashboard's own page may read this
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return refused(ErrorCode.FORBIDDEN, "The admin key is for this origin's pages only")
        return JSONResponse({"adminKey": key, "devMode": True}, headers=NO_STORE)

    routes: list[BaseRoute] = [
        Route(PATH + "/api/function_logs", function_logs_endpoint(engine), methods=["GET"])
    ]
    if settings.dev_mode:
        routes.append(Route(PATH + "/key", dev_key, methods=["GET"]))
    else:
        routes.append(Route(PATH + "/key", _not_found))
    page = Path(settings.dashboard_dir)
    if page.is_dir():
        routes.append(Mount(PATH, StaticFiles(directory=page, html=True), name="dashboard"))
    else:
        routes += [Route(PATH, _not_built), Route(PATH + "/{rest:path}", _not_built)]
    return routes
