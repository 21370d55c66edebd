"""The ASGI app: Convex's HTTP API and sync WebSocket over one engine, plus the demo page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from backend.assembly import Assembly, assemble
from backend.auth.providers import ProviderSet, providers_of
from backend.auth.verifier import ConvexTokenVerifier
from backend.config import Settings, load_settings
from backend.crons.ticker import CronTicker
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.files.sweeper import sweep_forever
from backend.http.auth_routes import AuthRoutes
from backend.http.cors import CorsByPath
from backend.http.dashboard import dashboard_routes
from backend.http.errors import error_response, http_exception, refused
from backend.http.function_api import handle_call
from backend.http.hosts import TrustedHosts
from backend.http.http_actions import SITE_MOUNT, HttpActions
from backend.http.request_body import RequestBodyGuard
from backend.http.security_headers import SecurityHeaders
from backend.http.site import SiteListener
from backend.http.storage_routes import StorageRoutes
from backend.http.websocket import serve_session
from backend.runtime import to_ms
from backend.scheduler import SchedulerWorker
from backend.storage.health import StoreState
from backend.storage.store import RETRY_AFTER, StoreUnavailable
from backend.sync.admin import AdminKey
from backend.sync.coordinator import SyncCoordinator
from backend.sync.identity import NO_TOKENS, TokenRejected, TokenVerifier
from backend.sync.session import SessionLimits
from backend.sync.wakeups import PostgresListener
from backend.udf.context import Identity

log = logging.getLogger("backend.http")


# A client resends its unanswered mutations after a reconnect, within seconds; ten minutes of
# remembered outcomes covers that with a wide margin (convex-protocol.md, section 7).
OUTCOME_WINDOW = timedelta(minutes=10)


async def follow_deployment(engine: Engine, every: float = 2.0) -> None:
    """Notice a deploy made by another process even when nothing here commits."""
    while True:
        await engine.runtime.timers.sleep(every)
        try:
            await engine.follow_deployment()
        except Exception:
            log.exception("could not read the deployed schema; trying again shortly")


async def housekeeping(engine: Engine, every: float = 60.0) -> None:
    """Forget wire-mutation outcomes older than the resend window, once a minute."""
    while True:
        await engine.runtime.timers.sleep(every)
        try:
            horizon = engine.runtime.now() - OUTCOME_WINDOW
            await engine.store.prune_outcomes(int(to_ms(horizon)))
        except StoreUnavailable:  # logged once per outage by the store
            pass
        except Exception:
            log.exception("housekeeping failed; trying again in a minute")


class CollapseSlashes:
    """``http://host/`` as a deployment URL makes the client ask for ``//api/...``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path.startswith("//"):
            scope = dict(scope, path="/" + path.lstrip("/"))
        await self.app(scope, receive, send)


class WebApp(Mount):
    """The built web app at ``/``, for every path but the API's. Starlette answers a path that
    matched a route by path but not by method (``GET /api/query``) with 405 only when no later
    route matches fully; a catch-all static mount would match it and answer a bare 404, so the
    API's coded refusals would depend on whether a web app was built."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__("/", app=app, name="web")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path: str = scope.get("path", "")
        if path == "/api" or path.startswith("/api/"):
            return Match.NONE, {}
        return super().matches(scope)


def create_app(
    settings: Settings | None = None,
    *,
    parts: Assembly | None = None,
    verifier: TokenVerifier | None = None,
    session_limits: SessionLimits | None = None,
    serve_site: bool = False,
) -> Starlette:
    """The whole server, over ``parts`` (``backend/assembly.py``; by default a serving
    assembly from the settings). ``verifier`` replaces the key ring's token check (tests of
    the sync layer use a test key). ``serve_site`` also opens the site origin's listener on
    ``SITE_PORT`` while the app runs (``python -m backend serve`` does; an app built for a
    test does not, unless asked)."""
    settings = settings or load_settings()
    parts = parts or assemble(settings, serving=True)
    engine, service, keyring = parts.engine, parts.auth, parts.keyring
    configured = providers_of(engine.app.extensions)
    providers = ProviderSet(configured, engine.runtime.clock) if configured else None
    if verifier is None:
        # the engine's own tokens, and the app's outside providers' (functions/auth_config.py)
        verifier = ConvexTokenVerifier(keyring.verifier(), providers)
    site = HttpActions(engine, verifier, max_body=settings.http_action_max_body)
    site_listener = SiteListener(site, settings) if serve_site and settings.site_port else None
    auth_routes = AuthRoutes(service, keyring, dev_mode=settings.dev_mode)
    coordinator = SyncCoordinator(engine)
    listener = PostgresListener(engine.store, coordinator.wake, engine.runtime.timers)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        worker = SchedulerWorker(engine)
        ticker = CronTicker(engine)
        # never serve an app whose schema is not the deployed one (NotDeployed says what to run)
        await engine.load_deployment(require=True)
        await ticker.sync()  # this app's crons are the deployed ones from now on
        await keyring.ensure_key()
        await coordinator.start()
        listener.start()
        tasks = [
            asyncio.create_task(worker.run_forever(), name="scheduler"),
            asyncio.create_task(ticker.run_forever(), name="crons"),
            asyncio.create_task(housekeeping(engine), name="housekeeping"),
            asyncio.create_task(follow_deployment(engine), name="deployment"),
            asyncio.create_task(sweep_forever(engine), name="storage-sweeper"),
        ]
        if site_listener is not None:
            await site_listener.start()
        try:
            yield
        finally:
            if site_listener is not None:
                await site_listener.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await listener.stop()
            await coordinator.stop()
            if service.oauth is not None:
                await service.oauth.aclose()
            if providers is not None:
                await providers.close()
            await engine.store.close()

    async def bearer_identity(request: Request) -> Identity | None:
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

    async def call(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in ("query", "mutation", "action"):
            return refused(ErrorCode.NOT_FOUND, "Not Found")
        try:
            identity = await bearer_identity(request)
        except ConvexError as error:
            return error_response(error)
        return await handle_call(request, engine, kind, identity)

    async def sync(websocket: WebSocket) -> None:
        await serve_session(
            websocket,
            engine=engine,
            coordinator=coordinator,
            verifier=verifier,
            limits=session_limits,
        )

    async def health(request: Request) -> Response:
        """Liveness, with the store's state; ``?ready`` is readiness: 503 while the store is
        out of reach (it probes the store, so a load balancer sees recovery without traffic)."""
        ready = "ready" in request.query_params
        if ready or not engine.store.health.up:
            await engine.store.probe()
        report = engine.store.health.report()
        up = report.state is StoreState.UP
        body: dict[str, Any] = {"ok": up, "store": report.state.value}
        if not up:
            body["storeDownForMs"] = int((report.down_for or 0) * 1000)
        headers = {"cache-control": "no-store"}
        if ready and not up:
            return refused(
                ErrorCode.UNAVAILABLE,
                "The database is unavailable",
                retry_after_ms=int(RETRY_AFTER.total_seconds() * 1000),
                headers=headers,
                **body,
            )
        return JSONResponse(body, headers=headers)

    routes: list[Any] = [
        *auth_routes.routes(),
        *StorageRoutes(engine).routes(),
        Mount(
            SITE_MOUNT,
            HttpActions(engine, verifier, mount=SITE_MOUNT, max_body=settings.http_action_max_body),
        ),
        Route("/api/health", health, methods=["GET"]),
        Route("/api/{kind:str}", call, methods=["POST"]),
        # The JS client adds its version (/api/1.48.0/sync); the Rust-based clients (Python,
        # Swift, Kotlin) ask for /api/sync.
        WebSocketRoute("/api/sync", sync),
        WebSocketRoute("/api/{version:str}/sync", sync),
    ]
    routes += dashboard_routes(settings, engine)
    admin_key = settings.resolved_admin_key()
    if admin_key is not None and engine.services.find(AdminKey) is None:
        engine.services.register(AdminKey, AdminKey(admin_key))
    web = Path(settings.web_dir)
    if web.is_dir():  # the demo web app, after the API routes so they win
        routes.append(WebApp(StaticFiles(directory=web, html=True)))
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHosts, allowed_hosts=settings.served_hosts()),
        Middleware(
            RequestBodyGuard,
            timeout=settings.body_timeout,
            slow_paths={"/api/storage/": settings.storage_upload_timeout},
        ),
        Middleware(CollapseSlashes),
        Middleware(CorsByPath, allowed_origins=settings.allowed_origins),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={HTTPException: http_exception},
    )
    app.state.engine = engine
    app.state.coordinator = coordinator
    app.state.auth = service
    app.state.keyring = keyring
    app.state.settings = settings
    app.state.site = site
    app.state.site_listener = site_listener
    return app
