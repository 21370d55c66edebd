"""``ctx``: what a function body gets. ``QueryCtx``, ``MutationCtx`` and ``ActionCtx``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, overload

from backend.errors import ConvexError, ErrorCode
from backend.files.api import StorageActions, StorageReader, StorageWriter
from backend.transactions.client import ClientInfo as ClientInfo  # re-exported: ctx.client
from backend.transactions.transaction import (
    DatabaseReader,
    DatabaseWriter,
    SystemDatabase,
    Transaction,
)
from backend.udf import jobs

if TYPE_CHECKING:
    from backend.engine import Engine
    from backend.udf.registry import RegisteredFunction

FunctionRef = "RegisteredFunction[Any, Any, Any] | str"


# Convex's ``UserIdentity`` field, and the OpenID Connect claim a token carries it in.
STANDARD_CLAIMS: Final[tuple[tuple[str, str], ...]] = (
    ("name", "name"),
    ("givenName", "given_name"),
    ("familyName", "family_name"),
    ("nickname", "nickname"),
    ("preferredUsername", "preferred_username"),
    ("profileUrl", "profile"),
    ("pictureUrl", "picture"),
    ("websiteUrl", "website"),
    ("email", "email"),
    ("emailVerified", "email_verified"),
    ("gender", "gender"),
    ("birthday", "birthdate"),
    ("timezone", "zoneinfo"),
    ("language", "locale"),
    ("phoneNumber", "phone_number"),
    ("phoneNumberVerified", "phone_number_verified"),
    ("address", "address"),
    ("updatedAt", "updated_at"),
)
_FROM_OIDC: Final = {oidc: convex for convex, oidc in STANDARD_CLAIMS if oidc != convex}
# Registered JWT claims: they describe the token, not the user, and Convex leaves them out.
_TOKEN_CLAIMS: Final = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti"})
_FIXED: Final = frozenset({"tokenIdentifier", "subject", "issuer"})

T = TypeVar("T")


class _Claim(Generic[T]):
    """An attribute that reads one of the identity's claims (``None`` when the user has none)."""

    def __init__(self, key: str) -> None:
        self.key = key

    @overload
    def __get__(self, identity: None, owner: type[Any]) -> _Claim[T]: ...

    @overload
    def __get__(self, identity: Identity, owner: type[Any]) -> T | None: ...

    def __get__(self, identity: Identity | None, owner: type[Any]) -> _Claim[T] | T | None:
        if identity is None:
            return self
        value: T | None = identity.get(self.key)
        return value


@dataclass(frozen=True)
class Identity(Mapping[str, Any]):
    """Who is calling: Convex's ``UserIdentity``, plus the session behind the caller's token.

    Read it as Convex code does, by attribute (``identity.name``, ``identity.email``,
    ``identity.tokenIdentifier``; each multi-word claim also has its Python spelling,
    ``identity.email_verified``, ``identity.picture_url``, ``identity.token_identifier``) or as
    a mapping with Convex's keys (``identity["emailVerified"]``, ``identity.get("pictureUrl")``,
    and custom claims by their name). ``dict(identity)`` is exactly the object Convex's
    ``ctx.auth.getUserIdentity()`` returns: ``tokenIdentifier``, ``subject``, ``issuer``, then the
    standard claims the user has and any custom claims. A claim the user does not have is
    ``None`` as an attribute and absent from the mapping.

    ``claims`` may use OpenID Connect names (``email_verified``, ``picture``) or Convex's
    (``emailVerified``, ``pictureUrl``); both read the same. Inside a function, the identity
    comes from a live session, and its standard claims from the user's account, read in the
    same transaction (``backend.auth.sessions.resolve_identity``).
    """

    subject: str
    session_id: str | None = None
    issuer: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)
    external: bool = False
    """True for an outside provider's token (``AuthProviders``): no session of ours is behind
    it, and its claims are the token's."""

    @property
    def token_identifier(self) -> str:
        """``issuer|subject``: unique and stable per user, as Convex builds it."""
        return f"{self.issuer}|{self.subject}"

    @property
    def tokenIdentifier(self) -> str:
        """``token_identifier`` under Convex's spelling."""
        return self.token_identifier

    @property
    def user_id(self) -> str:
        """The signed-in user's ``users`` id (the token's subject)."""
        return self.subject

    # Convex's claims, each under its Convex spelling (for code ported from TypeScript) and,
    # when that is camelCase, its Python one too.
    name = _Claim[str]("name")
    email = _Claim[str]("email")
    emailVerified = _Claim[bool]("emailVerified")
    email_verified = _Claim[bool]("emailVerified")
    pictureUrl = _Claim[str]("pictureUrl")
    picture_url = _Claim[str]("pictureUrl")
    givenName = _Claim[str]("givenName")
    given_name = _Claim[str]("givenName")
    familyName = _Claim[str]("familyName")
    family_name = _Claim[str]("familyName")
    nickname = _Claim[str]("nickname")
    preferredUsername = _Claim[str]("preferredUsername")
    preferred_username = _Claim[str]("preferredUsername")
    profileUrl = _Claim[str]("profileUrl")
    profile_url = _Claim[str]("profileUrl")
    websiteUrl = _Claim[str]("websiteUrl")
    website_url = _Claim[str]("websiteUrl")
    gender = _Claim[str]("gender")
    birthday = _Claim[str]("birthday")
    timezone = _Claim[str]("timezone")
    language = _Claim[str]("language")
    phoneNumber = _Claim[str]("phoneNumber")
    phone_number = _Claim[str]("phoneNumber")
    phoneNumberVerified = _Claim[bool]("phoneNumberVerified")
    phone_number_verified = _Claim[bool]("phoneNumberVerified")
    address = _Claim[str]("address")
    updatedAt = _Claim[str]("updatedAt")
    updated_at = _Claim[str]("updatedAt")

    @cached_property
    def _user_identity(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "tokenIdentifier": self.token_identifier,
            "subject": self.subject,
            "issuer": self.issuer,
        }
        custom: dict[str, Any] = {}
        for key, value in self.claims.items():
            if value is None or key in _TOKEN_CLAIMS or key in _FIXED:
                continue
            key = _FROM_OIDC.get(key, key)
            (view if key in _STANDARD_KEYS else custom)[key] = value
        ordered = {k: view[k] for k in (*_FIXED_ORDER, *_STANDARD_ORDER) if k in view}
        return {**ordered, **custom}

    def __getitem__(self, key: str) -> Any:
        return self._user_identity[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._user_identity)

    def __len__(self) -> int:
        return len(self._user_identity)

    def __bool__(self) -> bool:
        return True  # an identity is someone, whatever claims it carries

    def __repr__(self) -> str:
        return f"Identity(subject={self.subject!r}, session_id={self.session_id!r})"


_FIXED_ORDER: Final = ("tokenIdentifier", "subject", "issuer")
_STANDARD_ORDER: Final = tuple(convex for convex, _oidc in STANDARD_CLAIMS)
_STANDARD_KEYS: Final = frozenset(_STANDARD_ORDER)


IdentityResolver = Callable[[Transaction, Identity], Awaitable[Identity | None]]


class Auth:
    """``ctx.auth``: who is calling, as Convex's ``ctx.auth``.

    ``await ctx.auth.get_user_identity()`` is the caller's ``Identity`` or None;
    ``await ctx.auth.require_identity()`` the identity or ``UNAUTHENTICATED``. The identity
    is checked, in the function's own transaction, against a live session: a token whose
    session was revoked or has expired, or whose user was deleted, is nobody, at once (a live
    query that looked re-runs when the session goes). Reading it is recorded: a query that
    never looks at the caller's identity shares its result with every caller.

    For who may do what, the app decides from ``identity.subject`` (the user's id); for
    dangerous actions, it also calls ``require_sensitive_action``.
    """

    def __init__(
        self,
        identity: Identity | None,
        txn: Transaction | None = None,
        resolver: IdentityResolver | None = None,
    ) -> None:
        self._claimed = identity
        self._txn = txn
        self._resolver = resolver
        self._resolved = resolver is None or identity is None
        self._identity = identity if self._resolved else None
        self.used = False

    async def get_user_identity(self) -> Identity | None:
        """The caller's identity, or None: for a caller without a token, and for a revoked or
        expired session. Never raises for a bad caller."""
        self.used = True
        if not self._resolved:
            assert self._resolver is not None
            assert self._claimed is not None
            if self._txn is None:
                raise RuntimeError("identity resolution needs a transaction")
            self._identity = await self._resolver(self._txn, self._claimed)
            self._resolved = True
        return self._identity

    async def require_identity(self) -> Identity:
        """The caller's identity. Raises ``ConvexError`` ``UNAUTHENTICATED`` ("You must be
        signed in") without a live session."""
        identity = await self.get_user_identity()
        if identity is None:
            raise ConvexError(ErrorCode.UNAUTHENTICATED, "You must be signed in")
        return identity

    @property
    def claimed(self) -> Identity | None:
        """The identity as the caller presented it, before any liveness check: what an
        action hands the functions it runs (each checks it again). Never trust it alone."""
        return self._claimed


LiveCheck = Callable[[Identity], Awaitable[Identity | None]]


class ActionAuth(Auth):
    """``ctx.auth`` in an action. An action has no transaction of its own, so each look at the
    identity checks the session in a snapshot of its own: an action may run for minutes, and a
    sign-out during it is seen by its next look, as by every query and mutation it runs."""

    def __init__(self, identity: Identity | None, check: LiveCheck | None) -> None:
        super().__init__(identity)
        self._check = check

    async def get_user_identity(self) -> Identity | None:
        """The caller, or None when nobody is signed in or the session has ended since the
        action began."""
        self.used = True
        if self._claimed is None or self._check is None:
            return self._claimed
        return await self._check(self._claimed)


class _BaseCtx:
    def __init__(self, engine: Engine, auth: Auth, now: datetime) -> None:
        self._engine = engine
        self.auth = auth
        self.now = now
        """The time, frozen for the whole transaction (from the engine's clock)."""
        self._env_values = engine.environment.values  # as they are now, for the whole call

    @property
    def now_ms(self) -> float:
        return self.now.timestamp() * 1000.0

    @property
    def env(self) -> Mapping[str, str]:
        """The deployment's environment variables (``python -m backend env set NAME VALUE``),
        read-only: ``ctx.env["NAME"]`` (``KeyError`` when unset), ``ctx.env.get("NAME")``. A
        change is seen by the next call; a live query that read a variable re-runs when it
        changes."""
        return self._engine.environment.view(self._env_values, getattr(self, "_txn", None))


class QueryCtx(_BaseCtx):
    """``ctx`` in a query: ``db`` (read-only), ``auth``, ``now``, ``client``, ``storage``
    (``get_url``)."""

    def __init__(self, engine: Engine, txn: Transaction, auth: Auth) -> None:
        super().__init__(engine, auth, txn.now)
        self._txn = txn
        self.db = DatabaseReader(txn)
        self.storage = StorageReader(engine, txn)

    @property
    def client(self) -> ClientInfo | None:
        """Where the call came from, when the transport knows."""
        return self._txn.client

    async def run_query(
        self, fn: RegisteredFunction[Any, Any, Any] | str, args: Mapping[str, Any] | None = None
    ) -> Any:
        """Run another query inside this transaction."""
        return await self._engine._call_nested(self, fn, dict(args or {}), "query")


class MutationCtx(QueryCtx):
    """``ctx`` in a mutation: ``db`` (read-write), ``auth``, ``now``, ``scheduler``,
    ``storage`` (``get_url``, ``generate_upload_url``, ``delete``)."""

    def __init__(self, engine: Engine, txn: Transaction, auth: Auth) -> None:
        super().__init__(engine, txn, auth)
        self.db: DatabaseWriter = DatabaseWriter(txn)
        self.storage: StorageWriter = StorageWriter(engine, txn)
        self.scheduler = Scheduler(engine, lambda: SystemDatabase(txn), txn.now)

    async def run_mutation(
        self, fn: RegisteredFunction[Any, Any, Any] | str, args: Mapping[str, Any] | None = None
    ) -> Any:
        """Run another mutation inside this transaction (all or nothing together)."""
        return await self._engine._call_nested(self, fn, dict(args or {}), "mutation")


class ActionCtx(_BaseCtx):
    """``ctx`` in an action: no database; ``run_query``/``run_mutation`` each run their own
    transaction. Actions may do I/O; they are not retried. ``storage`` has everything a
    mutation's has, and ``store`` / ``get`` of a file's bytes."""

    def __init__(self, engine: Engine, auth: Auth, now: datetime) -> None:
        super().__init__(engine, auth, now)
        self.storage = StorageActions(engine)

    async def run_query(
        self, fn: RegisteredFunction[Any, Any, Any] | str, args: Mapping[str, Any] | None = None
    ) -> Any:
        """Run a query (public or internal, by reference or ``"module:name"`` path) in a
        snapshot of its own, as the action's caller, and return its value. Raises what the
        query raises, ``NOT_FOUND`` for no such query, ``INVALID_ARGUMENT`` for bad args."""
        return await self._engine.run_query(fn, dict(args or {}), self.auth.claimed, internal=True)

    async def run_mutation(
        self, fn: RegisteredFunction[Any, Any, Any] | str, args: Mapping[str, Any] | None = None
    ) -> Any:
        """Run a mutation in a transaction of its own (retried on a conflict, committed before
        this returns) as the action's caller, and return its value. Raises as ``run_query``;
        a mutation that raises has written nothing."""
        result = await self._engine.run_mutation(
            fn, dict(args or {}), self.auth.claimed, internal=True
        )
        return result.value

    async def run_action(
        self, fn: RegisteredFunction[Any, Any, Any] | str, args: Mapping[str, Any] | None = None
    ) -> Any:
        """Run another action as the action's caller and return its value (not retried)."""
        return await self._engine.run_action(fn, dict(args or {}), self.auth.claimed, internal=True)


class Scheduler:
    """``ctx.scheduler``: queue a function to run after this transaction commits.

    The job is a document written in the same transaction, so it exists exactly when the
    mutation's other writes do: a rolled-back mutation schedules nothing.
    """

    def __init__(
        self, engine: Engine, system_db: Callable[[], SystemDatabase], now: datetime
    ) -> None:
        self._engine = engine
        self._db = system_db
        self._now = now

    async def run_after(
        self,
        delay: timedelta | float,
        fn: RegisteredFunction[Any, Any, Any] | str,
        args: Mapping[str, Any] | None = None,
    ) -> str:
        """Run ``fn(args)`` once ``delay`` (a timedelta, or seconds) has passed, and return
        the job's id. ``fn`` is a mutation or action (internal ones too); its arguments are
        validated now, in this transaction: ``INVALID_ARGUMENT`` for bad ones or for a query,
        ``NOT_FOUND`` for no such function. The job runs as nobody."""
        if not isinstance(delay, timedelta):
            delay = timedelta(seconds=float(delay))
        return await self.run_at(self._now + max(delay, timedelta(0)), fn, args)

    async def run_at(
        self,
        when: datetime,
        fn: RegisteredFunction[Any, Any, Any] | str,
        args: Mapping[str, Any] | None = None,
    ) -> str:
        """Run ``fn(args)`` at ``when`` (or as soon as possible after); as ``run_after``."""
        return await jobs.enqueue(self._engine, self._db(), when, fn, dict(args or {}))

    async def cancel(self, job_id: str) -> None:
        """Cancel a job that has not finished, as Convex does: a pending one never runs; a
        running action goes on, but its outcome is not recorded over the cancellation. A
        finished job is left as it is. ``NOT_FOUND`` for no such job, ``INVALID_ARGUMENT``
        for an id of another table."""
        await jobs.cancel(self._db(), job_id)
