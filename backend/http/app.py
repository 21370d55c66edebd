"""The ASGI app: Convex's HTTP API and sync WebSocket over one engine, plus the demo page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from backend.auth.jwt import KeyRing
from backend.auth.oauth import OAuthClient, providers_from_env
from backend.auth.service import AuthConfig, AuthService
from backend.auth.sessions import resolve_identity
from backend.auth.verifier import ConvexTokenVerifier
from backend.config import Settings, load_settings
from backend.crons.ticker import CronTicker
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.http.auth_routes import AuthRoutes
from backend.http.cors import CorsByPath
from backend.http.errors import error_response, http_exception, refused
from backend.http.function_api import handle_call
from backend.http.hosts import TrustedHosts
from backend.http.request_body import RequestBodyGuard
from backend.http.security_headers import SecurityHeaders
from backend.http.websocket import serve_session
from backend.mail import install_seal
from backend.mail.smtp import transport_from_url
from backend.runtime import Runtime, to_ms
from backend.scheduler import SchedulerWorker
from backend.sensitive.service import SensitiveService
from backend.storage.health import StoreState
from backend.storage.store import RETRY_AFTER, Store, StoreUnavailable
from backend.sync.coordinator import SyncCoordinator
from backend.sync.identity import NO_TOKENS, TokenRejected, TokenVerifier
from backend.sync.session import SessionLimits
from backend.sync.wakeups import PostgresListener
from backend.system import system_functions, system_schema
from backend.udf.app import App, load_app
from backend.udf.context import Identity

log = logging.getLogger("backend.http")


def build_engine(
    settings: Settings, runtime: Runtime | None = None, *, app: App | None = None
) -> Engine:
    """The engine a server runs, from its settings (serving ``app``, by default the one the
    settings name). Raises ``ConfigurationError`` for a production configuration without a
    mail transport or secret (``check_can_serve``)."""
    settings.check_can_serve()
    if app is None:
        sys.path.insert(0, str(Path.cwd()))
        app = load_app(settings.app_schema, settings.app_functions)
    runtime = runtime or Runtime()
    return Engine(
        Store(settings.database_url, pg_schema=settings.database_schema),
        app,
        system_schema=system_schema(),
        system_functions=system_functions(),
        runtime=runtime,
        dev_mode=settings.dev_mode,
        identity_resolver=resolve_identity,
        mail_transport=transport_from_url(settings.smtp_url, runtime=runtime),
    )


def build_auth(settings: Settings, engine: Engine) -> tuple[AuthService, KeyRing]:
    """The auth service and the JWT key ring, configured from the settings."""
    base_url = settings.origin()
    keyring = KeyRing(engine, settings.resolved_secret_key(), issuer=base_url)
    providers = providers_from_env(os.environ)
    service = AuthService(
        engine,
        AuthConfig(
            secret=settings.resolved_secret_key(),
            base_url=base_url,
            trusted_origins=list(settings.allowed_origins),
            require_email_verification=settings.require_email_verification,
        ),
        oauth=OAuthClient(providers, engine.runtime) if providers else None,
    )
    engine.services.register(
        SensitiveService,
        SensitiveService(engine, settings.resolved_secret_key(), service.passwords),
    )
    install_seal(engine, settings.resolved_secret_key())
    return service, keyring


# A client resends its unanswered mutations after a reconnect, within seconds; ten minutes of
# remembered outcomes covers that with a wide margin (convex-protocol.md, section 7).
OUTCOME_WINDOW = timedelta(minutes=10)


async def follow_deployment(engine: Engine, every: float = 2.0) -> None:
    """Notice a deploy made by another process even when nothing here commits."""
    while True:
        await asyncio.sleep(every)
        try:
            await engine.follow_deployment()
        except Exception:
            log.exception("could not read the deployed schema; trying again shortly")


async def housekeeping(engine: Engine, every: float = 60.0) -> None:
    """Forget wire-mutation outcomes older than the resend window, once a minute."""
    while True:
        await asyncio.sleep(every)
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


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    verifier: TokenVerifier | None = None,
    auth: tuple[AuthService, KeyRing] | None = None,
    session_limits: SessionLimits | None = None,
) -> Starlette:
    """The whole server. ``verifier`` replaces the key ring's token check (tests of the sync
    layer use a test key); ``auth`` replaces the auth service built from the settings."""
    settings = settings or load_settings()
    engine = engine or build_engine(settings)
    service, keyring = auth or build_auth(settings, engine)
    if verifier is None:
        verifier = ConvexTokenVerifier(keyring.verifier())
    auth_routes = AuthRoutes(service, keyring, dev_mode=settings.dev_mode)
    coordinator = SyncCoordinator(engine)
    listener = PostgresListener(engine.store, coordinator.wake)

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
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await listener.stop()
            await coordinator.stop()
            if service.oauth is not None:
                await service.oauth.aclose()
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
        Route("/api/health", health, methods=["GET"]),
        Route("/api/{kind:str}", call, methods=["POST"]),
        # The JS client adds its version (/api/1.48.0/sync); the Rust-based clients (Python,
        # Swift, Kotlin) ask for /api/sync.
        WebSocketRoute("/api/sync", sync),
        WebSocketRoute("/api/{version:str}/sync", sync),
    ]
    web = Path(settings.web_dir)
    if web.is_dir():  # the demo web app, after the API routes so they win
        routes.append(Mount("/", StaticFiles(directory=web, html=True), name="web"))
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHosts, allowed_hosts=settings.served_hosts()),
        Middleware(RequestBodyGuard, timeout=settings.body_timeout),
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
    return app
