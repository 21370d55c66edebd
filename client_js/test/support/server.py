"""A backend for the JS tests: the real app, a test token issuer, and a few test-only routes.

    python client_js/test/support/server.py --port 0 [--database-url URL]
        [--pg-schema NAME] [--no-migrate] [--app tests.apps.basic] [--real-auth]
        [--require-email-verification] [--web-dir DIR] [--site]
        [--dashboard-dir DIR] [--production-admin-key KEY]

Run it from the repository root. It prints one line, ``READY <port> <pg schema or ->``, once
it is listening, and stops cleanly on SIGTERM / SIGINT.

- Without ``--database-url`` it uses a fresh SQLite file in a temporary directory.
- With a PostgreSQL URL it creates a fresh schema (and drops it on exit), unless
  ``--pg-schema`` names an existing one: that is how two processes share one database.
- ``--app PACKAGE`` serves ``PACKAGE.schema`` and ``PACKAGE.functions``; ``--app ""`` serves the
  demo app itself (the top-level ``schema`` and ``functions`` packages).
- ``--web-dir DIR`` serves the web app built in DIR at ``/`` (default: ``client_js/demo/dist``,
  as an absolute path, so the server's working directory does not matter).
- ``--dashboard-dir DIR`` serves the dashboard built in DIR at ``/_dashboard`` (default:
  ``client_js/dashboard/dist``); the server is in dev mode, so its admin key is the one
  ``GET /_dashboard/key`` answers; ``--production-admin-key KEY`` serves as production does
  (``DEV_MODE=0``) with ``ADMIN_KEY=KEY``: the dashboard asks for the key.
- Tokens are ES256 JWTs from a key made at startup; ``GET /test/token`` mints them
  (``forge=1`` signs with another key, a negative ``ttl`` gives an expired token).
- ``POST /test/drop-next-mutation-reply`` makes the next mutation commit and then lose its
  socket before the ``MutationResponse`` goes out, as a network failure would (the transport
  is patched, in this process only).
- ``--site`` also serves the app's HTTP actions at a site origin of their own, on a port of
  its own, printed as ``SITE <port>`` before the ``READY`` line (they are under ``/http/``
  on the main port either way). Uploaded files live in a temporary directory.
- ``POST /test/clock/advance?seconds=N`` moves the engine's clock N seconds ahead of the
  system clock (it starts on it), so a test sees a minute's cron tick without waiting a minute.

Test-only: nothing here is part of the product.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

import jwt  # noqa: E402
import uvicorn  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sqlalchemy import text  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from backend.assembly import Assembly, assemble  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.http.app import create_app  # noqa: E402
from backend.http.site import SiteListener  # noqa: E402
from backend.http.websocket import StarletteTransport  # noqa: E402
from backend.mail import DevOutboxTransport  # noqa: E402
from backend.runtime import Runtime  # noqa: E402
from backend.storage.database import DatabaseKind, create_db_engine, kind_of  # noqa: E402
from backend.storage.deploy import deploy  # noqa: E402
from backend.storage.migrate import upgrade  # noqa: E402
from backend.storage.store import Store  # noqa: E402
from backend.sync.identity import TokenRejected, VerifiedToken  # noqa: E402
from backend.udf.context import Identity  # noqa: E402

DEFAULT_WEB_DIR = REPO / "client_js" / "demo" / "dist"
DEFAULT_DASHBOARD_DIR = REPO / "client_js" / "dashboard" / "dist"
ISSUER = "http://stepup.test"
AUDIENCE = "convex"


class TestVerifier:
    """ES256 JWTs signed by this process: signature, ``iss``, ``aud``, ``exp`` and ``sub``."""

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.forger_key = ec.generate_private_key(ec.SECP256R1())

    def mint(
        self,
        sub: str,
        *,
        sid: str | None = None,
        ttl: float = 3600,
        issuer: str | None = None,
        audience: str | None = None,
        forge: bool = False,
    ) -> str:
        now = time.time()
        exp = now + ttl
        # The client needs exp - iat > 2 s to schedule refreshes, even on a token born expired.
        iat = now if ttl > 0 else exp - 3600
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "sub": sub,
            "iat": int(iat),
            "exp": int(exp),
            "jti": uuid.uuid4().hex,  # a forced refetch must yield a different string
        }
        if sid is not None:
            claims["sid"] = sid
        key = self.forger_key if forge else self.key
        return jwt.encode(claims, key, algorithm="ES256")

    async def verify(self, token: str) -> VerifiedToken:
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["ES256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("Token expired") from None
        except jwt.InvalidTokenError as error:
            raise TokenRejected(str(error) or type(error).__name__) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRejected("Token has no subject")
        sid = claims.get("sid")
        identity = Identity(
            subject=subject,
            session_id=sid if isinstance(sid, str) else None,
            issuer=self.issuer,
            claims=claims,
        )
        return VerifiedToken(identity, datetime.fromtimestamp(claims["exp"], UTC))


# ---- dropping a mutation's reply ------------------------------------------------------------

_drop_next_reply = False
_send = StarletteTransport.send


async def _send_or_drop(self: StarletteTransport, text: str) -> None:
    """Send a frame; but when armed, lose the socket in place of the next MutationResponse.

    The session sends a MutationResponse only once the mutation has committed, so closing
    here is "the commit happened, the reply never arrived": the client must resend the
    request on its next socket, and the server must answer with the stored outcome.
    """
    global _drop_next_reply
    if _drop_next_reply and json.loads(text).get("type") == "MutationResponse":
        _drop_next_reply = False
        await self.close(1001, "")
        raise ConnectionError("dropped the socket instead of a MutationResponse")
    await _send(self, text)


StarletteTransport.send = _send_or_drop  # type: ignore[method-assign]


# ---- the clock ------------------------------------------------------------------------------


class MovableClock:
    """The system clock, which a test may move ahead (``POST /test/clock/advance``)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


CLOCK = MovableClock()


# ---- test routes ----------------------------------------------------------------------------


def test_routes(
    verifier: TestVerifier,
) -> list[tuple[str, Callable[[Request], Coroutine[Any, Any, Response]], list[str]]]:
    async def token(request: Request) -> Response:
        params = request.query_params
        try:
            ttl = float(params.get("ttl", "3600"))
        except ValueError:
            return PlainTextResponse("ttl must be a number", status_code=400)
        minted = verifier.mint(
            params.get("sub", "user"),
            sid=params.get("sid"),
            ttl=ttl,
            issuer=params.get("iss"),
            audience=params.get("aud"),
            forge=params.get("forge") in ("1", "true"),
        )
        return JSONResponse({"token": minted})

    async def drop_next_mutation_reply(_request: Request) -> Response:
        global _drop_next_reply
        _drop_next_reply = True
        return JSONResponse({"armed": True})

    async def advance_clock(request: Request) -> Response:
        try:
            seconds = float(request.query_params.get("seconds", ""))
        except ValueError:
            return PlainTextResponse("seconds must be a number", status_code=400)
        if not seconds >= 0:
            return PlainTextResponse("a clock does not go backwards", status_code=400)
        CLOCK.ahead += timedelta(seconds=seconds)
        return JSONResponse({"now": CLOCK.now().timestamp() * 1000})

    return [
        ("/test/token", token, ["GET"]),
        ("/test/drop-next-mutation-reply", drop_next_mutation_reply, ["POST"]),
        ("/test/clock/advance", advance_clock, ["POST"]),
    ]


# ---- the database ---------------------------------------------------------------------------


class Database:
    """Where the server keeps its data, and what to remove when it stops."""

    def __init__(self, url: str | None, pg_schema: str | None) -> None:
        self.tmpdir: Path | None = None
        self.owned_schema = False
        if url is None or kind_of(url) is DatabaseKind.SQLITE:
            if url is None:
                self.tmpdir = Path(tempfile.mkdtemp(prefix="client-js-test-"))
                url = f"sqlite+aiosqlite:///{self.tmpdir / 'test.sqlite3'}"
            self.pg_schema = None
        else:
            self.owned_schema = pg_schema is None
            self.pg_schema = pg_schema or f"js_{uuid.uuid4().hex[:16]}"
        self.url = url

    async def prepare(self) -> None:
        if self.owned_schema:
            await self._admin(f'CREATE SCHEMA "{self.pg_schema}"')

    async def cleanup(self) -> None:
        if self.owned_schema:
            await self._admin(f'DROP SCHEMA IF EXISTS "{self.pg_schema}" CASCADE')
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    async def _admin(self, statement: str) -> None:
        admin = create_db_engine(self.url)
        try:
            async with admin.begin() as conn:
                await conn.execute(text(statement))
        finally:
            await admin.dispose()


def build(settings: Settings, database: Database, *, real_auth: bool) -> Assembly:
    # With real auth, ctx.auth checks the session behind each token (revocation works);
    # test tokens name no real session, so the test verifier's mode skips that check.
    return assemble(
        settings,
        store=Store(database.url, pg_schema=database.pg_schema),
        runtime=Runtime(clock=CLOCK),
        mail_transport=DevOutboxTransport(),
        test_tokens=not real_auth,
    )


class Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM once it has stopped, which would skip our cleanup."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(args: argparse.Namespace) -> None:
    database = Database(args.database_url, args.pg_schema)
    await database.prepare()
    sock = listen(args.port)
    port = sock.getsockname()[1]
    files_dir = Path(tempfile.mkdtemp(prefix="client-js-files-"))
    site: SiteListener | None = None
    try:
        settings = Settings(
            database_url=database.url,
            host="127.0.0.1",
            port=port,
            dev_mode=args.production_admin_key is None,
            admin_key=args.production_admin_key,
            secret_key="client-js-test-secret",  # noqa: S106 - a test server's fixed secret
            app_schema=f"{args.app}.schema" if args.app else "schema",
            app_functions=f"{args.app}.functions" if args.app else "functions",
            allowed_origins=[],
            web_dir=args.web_dir,
            dashboard_dir=args.dashboard_dir,
            require_email_verification=args.require_email_verification,
            site_port=0,
            storage_dir=str(files_dir),
            # passkeys need a host name for their relying party (an IP address is none)
            public_url=f"http://{args.public_host}:{port}" if args.public_host else None,
        )
        parts = build(settings, database, real_auth=args.real_auth)
        engine = parts.engine
        if not args.no_migrate:
            await upgrade(engine.store.engine)
            report = await deploy(engine.store, engine.code_schema)
            if not report.ok:
                raise SystemExit(report.format())
        verifier = TestVerifier()
        # --real-auth: tokens come from /api/auth/convex/token and the key ring checks them.
        app = create_app(settings, parts=parts, verifier=None if args.real_auth else verifier)
        # First, ahead of the web app mounted at "/", which would answer them with a 404.
        for path, endpoint, methods in reversed(test_routes(verifier)):
            app.router.routes.insert(0, Route(path, endpoint, methods=methods))

        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws_max_size=16 * 1024 * 1024,
            timeout_graceful_shutdown=3,
        )
        server = Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the server stopped before it was ready")
            await asyncio.sleep(0.02)
        if args.site:
            site = SiteListener(app.state.site, settings, sock=listen(0))
            await site.start()
            print(f"SITE {site.port}", flush=True)
        print(f"READY {port} {database.pg_schema or '-'}", flush=True)
        await task
    finally:
        if site is not None:
            await site.stop()
        shutil.rmtree(files_dir, ignore_errors=True)
        await database.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--pg-schema", default=None, help="reuse this existing schema")
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument(
        "--app", default="tests.apps.basic", help='package of schema/functions ("": the demo app)'
    )
    parser.add_argument("--real-auth", action="store_true", help="the product's own tokens")
    parser.add_argument(
        "--require-email-verification",
        action="store_true",
        help="no session for a password account until its address is proven",
    )
    parser.add_argument(
        "--web-dir", default=str(DEFAULT_WEB_DIR), help="the built web app to serve at /"
    )
    parser.add_argument("--site", action="store_true", help="HTTP actions on a port of their own")
    parser.add_argument(
        "--dashboard-dir", default=str(DEFAULT_DASHBOARD_DIR), help="the built dashboard"
    )
    parser.add_argument("--production-admin-key", default=None, help="DEV_MODE=0, this ADMIN_KEY")
    parser.add_argument("--public-host", default=None, help="PUBLIC_URL's host (localhost)")
    args = parser.parse_args()
    args.web_dir = str(Path(args.web_dir).resolve())
    args.dashboard_dir = str(Path(args.dashboard_dir).resolve())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
