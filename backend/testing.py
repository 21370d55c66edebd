"""``TestBackend``: the real engine, on a fresh database, driven directly from tests.

```python
async with TestBackend() as t:
    org = await t.as_user("alice").mutation("orgs:create", {"name": "Acme"})
    t.clock.advance(minutes=30)
    await t.run(lambda ctx: ctx.db.get(org))
```

Unlike a mock, it runs real transactions on a real database (a fresh SQLite file in a
temporary, memory-backed directory by default, or a fresh schema in PostgreSQL with
``database_url=``), with real conflicts and real limits. The whole engine reads the fake
``clock``. Scheduled work, mail included, runs before each call returns unless
``hold_scheduled=True``; then ``await t.run_scheduled()`` runs what is due. Cron jobs run when
the test says: ``t.clock.advance(minutes=1)``, then ``await t.run_crons()`` (or
``run_scheduled()``, which runs both). ``finish_scheduled()`` runs held work to the end,
moving the clock to each job's time; ``finish_in_progress()`` runs what is due now.

Rate limits are off unless ``rate_limits=True`` (to test them). ``await t.with_identity(
name=..., email=...)`` is a cheap caller with a real session; ``await user.step_up(action,
resource, via="password" | "email")`` verifies through the step-up functions as a person
would, reading the mailed code. Any function, internal ones included, is callable from a test.
The pytest plugin (``backend/pytest_plugin.py``) makes ``backend`` and ``user`` fixtures.

HTTP actions and file storage are driven over HTTP, in process: ``await t.fetch("/postMessage",
method="POST", body=b"...", headers={...})`` calls the app's HTTP actions at the site origin
(an ``httpx.Response``); a URL the engine handed out (``generate_upload_url``, ``get_url``,
``http://testserver/...``) goes to the main origin's routes instead. Files live in the
backend's temporary directory. ``await user.jwt()`` is a signed-in user's session JWT, for an
``Authorization: Bearer`` header.

The app's schema is deployed when the backend opens. An app can also be *evolved*: open
another backend on the same database with a new version of the app, and deploy it:

```python
async with TestBackend(app=v1) as t:
    ...                                              # documents written by v1
    async with t.reopen(app=v2, deploy=False) as t2:
        report = await t2.deploy()                   # report.ok, report.refusals, report.built
        await t2.run_migration("items:fill_label")   # or t2.migration_step(...), a batch
```
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

import httpx
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.routing import Mount

from backend import scheduler
from backend.assembly import assemble
from backend.auth import sessions
from backend.auth.oauth import VerifiedProfile
from backend.auth.passwords import Passwords
from backend.auth.service import SignedIn, Unverified
from backend.auth.tables import USERS
from backend.auth.verifier import ConvexTokenVerifier
from backend.config import Settings
from backend.engine import Engine, MutationResult
from backend.files.blobs import LocalDiskBlobs
from backend.files.service import DEFAULT_MAX_BYTES
from backend.mail import CaptureTransport, Mail
from backend.mail.outbox import DELIVER_PATH
from backend.migrator import BATCH_SIZE, MigrationProgress, Migrator
from backend.runtime import FakeClock, Runtime, from_ms, to_ms
from backend.schema_definition import Schema
from backend.storage.database import DatabaseKind, create_db_engine, kind_of
from backend.storage.deploy import DeployRefused, DeployReport
from backend.storage.deploy import deploy as deploy_schema
from backend.storage.migrate import upgrade
from backend.storage.store import Store
from backend.system import system_schema
from backend.transactions.limits import Limits
from backend.transactions.transaction import SystemDatabase, Transaction
from backend.udf.app import App, load_app
from backend.udf.context import Auth, ClientInfo, Identity, MutationCtx

T = TypeVar("T")
_CLIENT = ClientInfo(ip_address="127.0.0.1", user_agent="TestBackend")
_MAGIC_LINK = re.compile(r"/api/auth/magic-link/verify\?(?:\S*&)?token=([^&\s]+)")
_CODE = re.compile(r"\b(\d{6})\b")
_VERIFY_LINK = re.compile(r"/api/auth/verify-email\?(?:\S*&)?token=([^&\s]+)")
_template: dict[str, Path] = {}
TEST_HOST = "testserver"
TEST_ORIGIN = f"http://{TEST_HOST}"  # the main origin: the API, upload and file URLs
TEST_SITE_ORIGIN = "http://site.testserver"  # the site origin: HTTP actions
_identities = itertools.count(1)
# Test databases live in a memory-backed directory where there is one (private mkdtemp dirs).
_MEMORY_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108


class RunCtx(MutationCtx):
    """The ``ctx`` of ``t.run``: a mutation context whose ``db`` reaches system tables too."""

    db: SystemDatabase

    def __init__(self, engine: Engine, txn: Transaction) -> None:
        super().__init__(engine, txn, Auth(None))
        self.db = SystemDatabase(txn)


class Caller:
    """Calls functions as one identity (or as nobody)."""

    def __init__(self, backend: TestBackend, identity: Identity | None) -> None:
        self._backend = backend
        self.identity = identity

    @property
    def session_id(self) -> str | None:
        """The caller's session id (None for nobody)."""
        return self.identity.session_id if self.identity else None

    async def query(self, path: str, args: dict[str, Any] | None = None) -> Any:
        """Run a query (public or internal: a test may call any function)."""
        return await self._backend.engine.run_query(
            path, ({} if args is None else args), self.identity, internal=True
        )

    async def mutation(self, path: str, args: dict[str, Any] | None = None) -> Any:
        """Run a mutation (public or internal), then the scheduled work it left due."""
        return (await self.mutation_result(path, args)).value

    async def mutation_result(
        self, path: str, args: dict[str, Any] | None = None
    ) -> MutationResult:
        """As ``mutation``, with the commit's timestamp and log lines (``MutationResult``);
        raises what the mutation raises."""
        try:
            return await self._backend.engine.run_mutation(
                path, ({} if args is None else args), self.identity, internal=True, client=_CLIENT
            )
        finally:
            await self._backend._after_call()

    async def action(self, path: str, args: dict[str, Any] | None = None) -> Any:
        """Run an action (public or internal), then the scheduled work it left due."""
        try:
            return await self._backend.engine.run_action(
                path, ({} if args is None else args), self.identity, internal=True
            )
        finally:
            await self._backend._after_call()


class UserHandle(Caller):
    """A signed-in user: calls run as this session (``t.sign_up(...)``, ``t.sign_in(...)``,
    ``t.with_identity(...)``)."""

    def __init__(
        self, backend: TestBackend, signed_in: SignedIn, *, password: str | None = None
    ) -> None:
        super().__init__(
            backend, Identity(subject=signed_in.user["_id"], session_id=signed_in.session["_id"])
        )
        self.token = signed_in.token
        self.user = signed_in.user
        self.session = signed_in.session
        self.password = password

    async def step_up(
        self,
        action: str,
        resource: str | None = None,
        *,
        via: Literal["password", "email"] | None = None,
    ) -> dict[str, Any]:
        """Verify for ``action`` (on ``resource``) the way a person would: through
        ``sensitive:verifyPassword`` with this user's password, or ``sensitive:sendEmailCode``
        and ``sensitive:verifyEmailCode`` with the code read from the mail it sent. ``via``
        defaults to the password where this handle knows one, else the email. Returns the
        answer (``{ok: True, expiresAt}``); raises ``AssertionError`` with the server's code
        when the verification fails."""
        target: dict[str, Any] = {"action": action}
        if resource is not None:
            target["resource"] = resource
        method = via or ("password" if self.password is not None else "email")
        if method == "password":
            if self.password is None:
                raise TypeError("this user's password is unknown: sign them up with one")
            answer = await self.mutation(
                "sensitive:verifyPassword", {**target, "password": self.password}
            )
        elif method == "email":
            sent = await self.mutation("sensitive:sendEmailCode", target)
            if not sent.get("ok"):
                raise AssertionError(f"no code was sent: {sent}")
            await self._backend._deliver_mail()
            code = self._backend._newest_code(self.email)
            answer = await self.mutation("sensitive:verifyEmailCode", {**target, "code": code})
        else:
            raise TypeError(f"via must be 'password' or 'email', not {via!r}")
        if not answer.get("ok"):
            raise AssertionError(f"step-up for {action} via {method} failed: {answer}")
        return dict(answer)

    @property
    def user_id(self) -> str:
        """The user's ``_users`` id."""
        return str(self.user["_id"])

    async def jwt(self) -> str:
        """A session JWT for this user, as ``/api/auth/convex/token`` mints them."""
        assert self.identity is not None
        assert self.identity.session_id is not None
        return await self._backend.keyring.mint(
            subject=self.identity.subject, session_id=self.identity.session_id
        )

    @property
    def email(self) -> str:
        """The user's email address."""
        return str(self.user["email"])


class TestBackend(Caller):
    """The real engine on a fresh database with a fake clock (the module's docstring says
    what it gives a test). Use it as ``async with TestBackend(app=...) as t:``; as a caller it
    is nobody."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        database_url: str | None = None,
        *,
        app: App | None = None,
        schema_module: str = "schema",
        functions_package: str = "functions",
        clock: FakeClock | None = None,
        limits: Limits | None = None,
        rate_limits: bool = False,
        hold_scheduled: bool = False,
        dev_mode: bool = True,
        passwords: Passwords | None = None,
        require_email_verification: bool = False,
        existing: bool = False,
        pg_schema: str | None = None,
        deploy: bool = True,
        max_file_bytes: int = DEFAULT_MAX_BYTES,
        http_action_max_body: int | None = None,
    ) -> None:
        """``existing=True`` opens the database at ``database_url`` (and, on PostgreSQL, in
        ``pg_schema``) as it is, and leaves it in place on exit. ``deploy=False`` does not
        deploy the app's schema on opening (call ``deploy()``): calls then run against what
        is deployed, and writes to tables deployed otherwise than this app declares them are
        refused, as on a server that runs an older app."""
        super().__init__(self, None)
        if existing and database_url is None:
            raise TypeError("existing=True needs the database_url of the database to open")
        self.database_url = database_url
        self.existing = existing
        self.existing_pg_schema = pg_schema
        self.deploy_on_open = deploy
        self.app = app or load_app(schema_module, functions_package)
        self.clock = clock or FakeClock()
        self.rate_limits = rate_limits
        self.limits = replace(limits or Limits(), rate_limits=rate_limits)
        self.hold_scheduled = hold_scheduled
        self.dev_mode = dev_mode
        self.passwords = passwords or Passwords()
        self.require_email_verification = require_email_verification
        self._mail = CaptureTransport(runtime=Runtime(clock=self.clock))
        self._tmpdir: Path | None = None
        self._pg_schema: str | None = None
        self._engine: Engine | None = None
        self._deployed_template = False
        self.max_file_bytes = max_file_bytes
        self.http_action_max_body = http_action_max_body
        self._files_dir: Path | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def engine(self) -> Engine:
        """The engine under test; ``RuntimeError`` outside ``async with``."""
        if self._engine is None:
            raise RuntimeError("use `async with TestBackend() as t:`")
        return self._engine

    @property
    def outbox(self) -> list[Mail]:
        """Every mail sent so far, oldest first."""
        return list(self._mail.sent)

    async def __aenter__(self) -> TestBackend:
        from backend.crons.ticker import CronTicker
        from backend.scheduler import SchedulerWorker

        store = await (self._existing_store() if self.existing else self._fresh_store())
        try:
            if self.deploy_on_open and not self._deployed_template:
                report = await deploy_schema(store, self._schema())
                if not report.ok:
                    raise DeployRefused(report)
        except BaseException:
            await store.close()
            await self._cleanup()
            raise
        self._files_dir = Path(tempfile.mkdtemp(prefix="backend-files-", dir=_MEMORY_DIR))
        parts = assemble(
            # the harness's settings, and nothing from the environment or a .env file
            Settings.model_construct(
                secret_key="test-secret-key",  # noqa: S106
                public_url=TEST_ORIGIN,
                dev_mode=self.dev_mode,
                require_email_verification=self.require_email_verification,
                storage_max_bytes=self.max_file_bytes,
            ),
            store=store,
            app=self.app,
            runtime=Runtime(clock=self.clock),
            mail_transport=self._mail,
            passwords=self.passwords,
            limits=self.limits,
            blobs=LocalDiskBlobs(self._files_dir),
        )
        self._engine = parts.engine
        self.auth, self.files, self.keyring = parts.auth, parts.files, parts.keyring
        await self._engine.load_deployment()
        self.worker = SchedulerWorker(self._engine)
        self.crons = CronTicker(self._engine)
        if self.deploy_on_open:
            try:
                await self.crons.sync()
            except BaseException:
                await self._engine.store.close()
                await self._cleanup()
                raise
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._engine is not None:
            await self._engine.store.close()
        if self._files_dir is not None:
            shutil.rmtree(self._files_dir, ignore_errors=True)
        await self._cleanup()

    @property
    def files_dir(self) -> Path:
        """Where this backend's files live (a temporary directory)."""
        assert self._files_dir is not None
        return self._files_dir

    def _http_client(self) -> httpx.AsyncClient:
        if self._http is None:
            from backend.http.http_actions import DEFAULT_MAX_BODY, SITE_MOUNT, HttpActions
            from backend.http.storage_routes import StorageRoutes

            verifier = ConvexTokenVerifier(self.keyring.verifier())
            limit = self.http_action_max_body or DEFAULT_MAX_BODY
            site = HttpActions(self.engine, verifier, max_body=limit)
            main = Starlette(
                routes=[
                    *StorageRoutes(self.engine).routes(),
                    Mount(
                        SITE_MOUNT,
                        HttpActions(self.engine, verifier, mount=SITE_MOUNT, max_body=limit),
                    ),
                ]
            )

            async def route(scope: Any, receive: Any, send: Any) -> None:
                host = dict(scope.get("headers", [])).get(b"host", b"").decode()
                await (main if host == TEST_HOST else site)(scope, receive, send)

            self.asgi = route
            self._http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=route), base_url=TEST_SITE_ORIGIN
            )
        return self._http

    async def fetch(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """A request to the app's HTTP actions at the site origin (``"/postMessage"``), or to
        a URL the engine gave out (``http://testserver/api/storage/...``). Scheduled work it
        causes runs before this returns, as after any call."""
        content = body.encode() if isinstance(body, str) else body
        try:
            return await self._http_client().request(
                method, path, content=content, headers=headers, json=json
            )
        finally:
            await self._after_call()

    async def _cleanup(self) -> None:
        if self._pg_schema is not None and self.database_url is not None:
            admin = create_db_engine(self.database_url)
            try:
                async with admin.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self._pg_schema}" CASCADE'))
            finally:
                await admin.dispose()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _schema(self) -> Schema:
        return self.app.schema.merged(system_schema())

    async def _existing_store(self) -> Store:
        assert self.database_url is not None
        store = Store(self.database_url, pg_schema=self.existing_pg_schema)
        await upgrade(store.engine)
        return store

    async def _fresh_store(self) -> Store:
        if self.database_url is None or kind_of(self.database_url) is DatabaseKind.SQLITE:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="backend-test-", dir=_MEMORY_DIR))
            path = self._tmpdir / "test.sqlite3"
            if self.deploy_on_open:  # a copy of an empty database with this schema deployed
                shutil.copyfile(await _deployed_template(self._schema()), path)
                self._deployed_template = True
            else:
                shutil.copyfile(await _sqlite_template(), path)
            return Store(f"sqlite+aiosqlite:///{path}")
        self._pg_schema = f"t_{uuid.uuid4().hex[:16]}"
        admin = create_db_engine(self.database_url)
        try:
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{self._pg_schema}"'))
        finally:
            await admin.dispose()
        store = Store(self.database_url, pg_schema=self._pg_schema)
        await upgrade(store.engine)
        return store

    # ---- evolving the app ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database's URL (with ``pg_schema``, what ``reopen`` opens)."""
        return self.engine.store.url

    @property
    def pg_schema(self) -> str | None:
        """The PostgreSQL schema this backend's database lives in (None on SQLite)."""
        return self.engine.store.pg_schema

    def reopen(self, app: App | None = None, *, deploy: bool = True, **options: Any) -> TestBackend:
        """Another backend on this database, serving ``app`` (by default this one's), on this
        backend's clock. It leaves the database in place; this backend still owns it, and keeps
        running its own app (an older server, once the new app is deployed)."""
        options.setdefault("clock", self.clock)
        options.setdefault("dev_mode", self.dev_mode)
        options.setdefault("passwords", self.passwords)
        options.setdefault("hold_scheduled", self.hold_scheduled)
        options.setdefault("rate_limits", self.rate_limits)
        return TestBackend(
            self.url,
            app=app or self.app,
            existing=True,
            pg_schema=self.pg_schema,
            deploy=deploy,
            **options,
        )

    async def deploy(self, **options: Any) -> DeployReport:
        """Deploy this backend's app schema (``storage.deploy.deploy``'s options); on success
        the engine serves it at once. A refusal is returned, not raised: see ``report.ok``."""
        report = await deploy_schema(self.engine.store, self.engine.code_schema, **options)
        await self.engine.load_deployment()
        if report.ok:
            await self.crons.sync()
        return report

    @property
    def migrations(self) -> Migrator:
        """The app's data migrations (``@migration``), to list or run step by step."""
        return Migrator(self.engine)

    async def run_migration(self, name: str, *, batch_size: int = BATCH_SIZE) -> MigrationProgress:
        """Run a data migration to the end (from where it stopped), a batch per transaction."""
        try:
            return await self.migrations.run(name, batch_size=batch_size)
        finally:
            await self._after_call()

    async def migration_step(self, name: str, *, batch_size: int = BATCH_SIZE) -> MigrationProgress:
        """Run one batch of a data migration, in one transaction."""
        try:
            return await self.migrations.step(name, batch_size=batch_size)
        finally:
            await self._after_call()

    def as_user(self, user_id: str, session_id: str | None = None) -> Caller:
        """Call as a bare identity. Without a real session ``ctx.auth`` sees nobody: use
        ``sign_up`` / ``sign_in`` for a signed-in user."""
        return Caller(self, Identity(subject=user_id, session_id=session_id))

    async def sign_up(self, email: str, password: str, name: str | None = None) -> UserHandle:
        """Create a user with a password; returns it signed in on a fresh session. (With
        ``require_email_verification`` the user first follows the verification link mailed
        at sign-up, as a person would.)"""
        try:
            created = await self.auth.sign_up(email, password, name, _CLIENT)
        finally:
            await self._after_call()
        if isinstance(created, Unverified):
            verified = await self.verify_email(email)
            verified.password = password
            return verified
        return UserHandle(self, created, password=password)

    async def sign_in(self, email: str, password: str) -> UserHandle:
        """A new, fresh session for an existing password user."""
        try:
            signed_in = await self.auth.sign_in(email, password, _CLIENT)
        finally:
            await self._after_call()
        return UserHandle(self, signed_in, password=password)

    async def sign_in_magic_link(self, email: str) -> UserHandle:
        """Request a magic link, read it from the captured mail, follow it (creates the user).
        Like any proof of the address, the first one takes an unverified account over."""
        await self.auth.request_magic_link(email, None, _CLIENT)
        await self.worker.run_due()
        token = self._newest_link(email, _MAGIC_LINK)
        signed_in = await self.auth.verify_magic_link(token, _CLIENT)
        await self._after_call()
        return UserHandle(self, signed_in)

    async def verify_email(self, email: str) -> UserHandle:
        """Follow the newest verification link mailed to ``email``; returns the user signed
        in by it (the link proves the address and confirms the account's password)."""
        await self.worker.run_due()
        token = self._newest_link(email, _VERIFY_LINK)
        verified = await self.auth.verify_email(token, _CLIENT)
        await self._after_call()
        if verified.signed_in is None:
            raise AssertionError(f"the address {email} was verified already")
        return UserHandle(self, verified.signed_in)

    async def with_identity(
        self,
        *,
        subject: str | None = None,
        name: str | None = None,
        email: str | None = None,
    ) -> UserHandle:
        """A caller with a real session, made cheaply (no password, no mail, no rate limit):
        ``ctx.auth`` sees them, with their ``name`` and ``email`` among the claims, as
        convex-test's ``withIdentity`` gives a function an identity.

        ``subject`` names an existing user (their ``_users`` id): a new session of theirs.
        Otherwise the user with ``email`` is found, or created (verified address; ``name``
        defaults to the address's local part, the address to one made up from ``name``)."""
        engine = self.engine
        counter = next(_identities)

        async def open_session(db: SystemDatabase) -> SignedIn:
            user: dict[str, Any] | None
            if subject is not None:
                is_user = db.txn.schema.table_of_id(subject) == USERS
                user = await db.get(subject) if is_user else None
                if user is None:
                    raise TypeError(f"subject {subject!r} is not the id of an existing user")
            else:
                address = (email or f"{_slug(name) or 'user'}{counter}@example.test").lower()
                user = await db.query(USERS).with_index("by_email", email=address).first()
                if user is None:
                    fields = {
                        "email": address,
                        "name": name or address.split("@")[0],
                        "emailVerified": True,
                        "image": None,
                        "createdAt": db.now_ms,
                        "updatedAt": db.now_ms,
                    }
                    user = {"_id": await db.insert(USERS, fields), **fields}
            token, session = await sessions.create_session(
                db,
                engine.runtime,
                user["_id"],
                now_ms=db.now_ms,
                ip_address=_CLIENT.ip_address,
                user_agent=_CLIENT.user_agent,
            )
            return SignedIn(token, session, user)

        signed_in, _ = await engine.system_write(open_session, label="_test:withIdentity")
        return UserHandle(self, signed_in)

    def _newest_code(self, email: str) -> str:
        address = email.strip().lower()
        for mail in reversed(self._mail.sent):
            match = _CODE.search(mail.text)
            if mail.to == address and mail.subject.startswith("Your verification code") and match:
                return match.group(1)
        raise AssertionError(f"no verification code was mailed to {email}")

    async def _deliver_mail(self) -> None:
        """Send the mail that is due, even while other scheduled work is held."""
        now = self.clock.now()

        async def due(db: SystemDatabase) -> list[dict[str, Any]]:
            return await (
                db.query(scheduler.TABLE)
                .with_index(
                    "by_state",
                    lambda q: q.eq("state", "pending").lte("scheduledTime", to_ms(now)),
                )
                .collect()
            )

        for job in await self.engine.system_read(due):
            if job["name"] == DELIVER_PATH:
                await self.worker.run_job(job["_id"])

    def _newest_link(self, email: str, pattern: re.Pattern[str]) -> str:
        address = email.strip().lower()
        for mail in reversed(self._mail.sent):
            match = pattern.search(mail.text)
            if mail.to == address and match:
                return unquote(match.group(1))
        raise AssertionError(f"no such link was mailed to {email}")

    async def sign_in_oauth(
        self, provider: str, email: str, *, name: str | None = None, email_verified: bool = True
    ) -> UserHandle:
        """Sign in as a provider's verified user (the provider's side is taken as done; the
        full redirect flow is tested against a real OIDC provider on loopback)."""
        profile = VerifiedProfile(
            provider=provider,
            subject=f"{provider}-{email.strip().lower()}",
            email=email,
            email_verified=email_verified,
            name=name,
            picture=None,
        )
        try:
            signed_in = await self.auth.sign_in_with_profile(profile, _CLIENT)
        finally:
            await self._after_call()
        return UserHandle(self, signed_in)

    async def run(self, fn: Callable[[RunCtx], Awaitable[T]]) -> T:
        """Run any code inside one read-write transaction; its ``ctx.db`` reaches every table."""
        engine = self.engine
        holder: list[T] = []

        async def body(txn: Transaction) -> None:
            holder.append(await fn(RunCtx(engine, txn)))

        try:
            await engine.write(body, function_path="_test:run")
        finally:
            await self._after_call()
        return holder[-1]

    async def set_env(self, name: str, value: str) -> None:
        """Set a deployment environment variable, as ``python -m backend env set`` does."""
        await self.engine.environment.set(name, value)

    async def remove_env(self, name: str) -> bool:
        """Unset the environment variable ``name``; False if it was not set."""
        return await self.engine.environment.remove(name)

    async def run_scheduled(self) -> int:
        """Run every scheduled job and every cron tick that is due by the fake clock (and the
        jobs those schedule for now). Returns how many ran."""
        ran = await self.crons.run_due()
        return ran + await self.worker.run_due()

    async def finish_in_progress(self) -> int:
        """Run the scheduled work that is due now and the work it schedules for now, leaving
        the clock where it is (convex-test's ``finishInProgressScheduledFunctions``); for a
        test that holds scheduled work. Returns how many jobs ran."""
        return await self.worker.run_due()

    async def finish_scheduled(self, *, max_iterations: int = 100) -> int:
        """Run every scheduled job to the end, moving the fake clock to each one's time, and
        the jobs those schedule, until none is pending (convex-test's
        ``finishAllScheduledFunctions``). Cron ticks are left alone: they never run out.
        Returns how many jobs ran; raises ``RuntimeError`` after ``max_iterations`` rounds
        (a job that keeps scheduling itself)."""
        ran = 0
        for _ in range(max_iterations):
            next_ms = await self.worker.next_due_ms()
            if next_ms is None:
                return ran
            when = from_ms(next_ms)
            if when > self.clock.now():
                self.clock.set(when)
            ran += await self.worker.run_due()
        if await self.worker.next_due_ms() is None:
            return ran
        raise RuntimeError(
            f"finish_scheduled: still scheduled work after {max_iterations} rounds; does a "
            "function schedule itself for ever? (or raise max_iterations)"
        )

    async def run_crons(self) -> int:
        """Run every cron tick due by the fake clock (``t.clock.advance(minutes=1)`` first);
        returns how many ran. The jobs they schedule run too, unless ``hold_scheduled``."""
        try:
            return await self.crons.run_due()
        finally:
            await self._after_call()

    async def _after_call(self) -> None:
        if not self.hold_scheduled:
            await self.worker.run_due()


def _slug(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", "", (name or "").lower())[:32]


async def _deployed_template(schema: Schema) -> Path:
    """A migrated, empty SQLite database with ``schema`` deployed, made once per schema."""
    text_of = "\n".join(
        f"{t}|{schema.describe(t)}|{[(i.name, i.fields) for i in schema.indexes_of(t)]}"
        for t in sorted(schema.tables)
    )
    key = "deployed:" + hashlib.sha256(text_of.encode()).hexdigest()
    found = _template.get(key)
    if found is not None and found.exists():
        return found
    base = await _sqlite_template()
    path = base.with_name(f"{key.partition(':')[2][:16]}.sqlite3")
    shutil.copyfile(base, path)
    store = Store(f"sqlite+aiosqlite:///{path}")
    try:
        report = await deploy_schema(store, schema)
        assert report.ok, report.format()
    finally:
        await store.close()
    _template[key] = path
    return path


async def _sqlite_template() -> Path:
    """A migrated, empty SQLite database, made once per process and copied per test."""
    found = _template.get("path")
    if found is not None and found.exists():
        return found
    directory = Path(tempfile.mkdtemp(prefix="backend-template-", dir=_MEMORY_DIR))
    path = directory / "template.sqlite3"
    engine = create_db_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    _template["path"] = path
    return path
