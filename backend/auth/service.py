"""Signing in and out: email and password, magic links, OAuth, and tokens for the client.

Each flow is a few short serializable transactions around the slow parts (argon2 runs between
transactions, off the event loop; OAuth calls the provider between them). Rate limits are
spent in a transaction of their own *before* the check they guard, so a failed attempt still
counts. Answers never reveal whether an email is known: sign-in for an unknown email does the
same argon2 work and fails the same way; a magic-link request always answers ``{status: true}``
and always sends a mail.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from email_validator import EmailNotValidError, validate_email

from backend.auth import sessions
from backend.auth.oauth import OAuthClient, PendingLogin, VerifiedProfile
from backend.auth.passwords import Passwords, check_password_rules
from backend.auth.tables import ACCOUNTS, USERS, VERIFICATIONS
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.mail import SECRET, Mail, queue_mail
from backend.ratelimit.limiter import TokenBucket, limit
from backend.runtime import from_ms, to_ms
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import ClientInfo

Document = dict[str, Any]
CREDENTIAL = "credential"

RATE_LIMITS: dict[str, TokenBucket] = {
    "auth.signIn.email": TokenBucket(5, timedelta(minutes=1), capacity=10),
    "auth.signIn.ip": TokenBucket(30, timedelta(minutes=1), capacity=60),
    "auth.signUp.ip": TokenBucket(5, timedelta(minutes=10), capacity=10),
    # USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL says an email has an account (Better Auth's client
    # expects it): asking about one email is limited wherever the asking comes from
    "auth.signUp.email": TokenBucket(3, timedelta(minutes=10), capacity=5),
    "auth.mail.email": TokenBucket(3, timedelta(minutes=10), capacity=5),
    "auth.mail.ip": TokenBucket(10, timedelta(minutes=10), capacity=20),
}


@dataclass(frozen=True)
class SignedIn:
    token: str
    session: Document
    user: Document
    callback_url: str | None = None


@dataclass
class AuthConfig:
    secret: str
    base_url: str
    trusted_origins: list[str] = field(default_factory=list)
    session_ttl: timedelta = sessions.DEFAULT_SESSION_TTL
    magic_link_ttl: timedelta = timedelta(minutes=10)
    oauth_ttl: timedelta = timedelta(minutes=10)


def normalise_email(email: Any) -> str:
    """The address in lower case, or ``INVALID_EMAIL``."""
    if not isinstance(email, str) or len(email) > 254:
        raise ConvexError("INVALID_EMAIL", "Enter a valid email address", path="email")
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ConvexError("INVALID_EMAIL", "Enter a valid email address", path="email") from None
    return checked.normalized.lower()


def _text(value: Any, name: str, *, max_length: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_length:
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT,
            f"{name} must be a string of at most {max_length}",
            path=name,
        )
    return value.strip()


class AuthService:
    def __init__(
        self,
        engine: Engine,
        config: AuthConfig,
        *,
        passwords: Passwords | None = None,
        oauth: OAuthClient | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.passwords = passwords or Passwords()
        self.oauth = oauth

    @property
    def runtime(self) -> Any:
        return self.engine.runtime

    def _now_ms(self) -> float:
        return to_ms(self.engine.runtime.now())

    def _key(self, value: str) -> str:
        """Rate-limit keys: a keyed hash, so the table holds no emails or addresses."""
        return hmac.new(self.config.secret.encode(), value.encode(), hashlib.sha256).hexdigest()[
            :32
        ]

    async def _spend(self, *limits: tuple[str, str | None]) -> None:
        wanted = [(name, key) for name, key in limits if key]

        async def spend(db: SystemDatabase) -> int | None:
            worst: int | None = None
            for name, key in wanted:
                result = await limit(db.txn, name, RATE_LIMITS[name], key=self._key(key or ""))
                if not result.ok:
                    worst = max(worst or 0, result.retry_after_ms or 0)
            return worst

        retry_after, _ts = await self.engine.system_write(spend, label="_system/auth:rateLimit")
        if retry_after is not None:
            raise ConvexError(
                ErrorCode.RATE_LIMITED,
                "Too many attempts. Try again later.",
                retryAfterMs=retry_after,
            )

    async def _sign_in_user(
        self, db: SystemDatabase, user_id: str, client: ClientInfo
    ) -> tuple[str, Document]:
        return await sessions.create_session(
            db,
            self.engine.runtime,
            user_id,
            now_ms=db.now_ms,
            ttl=self.config.session_ttl,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
        )

    # ---- email and password -------------------------------------------------------------

    async def sign_up(self, email: Any, password: Any, name: Any, client: ClientInfo) -> SignedIn:
        address = normalise_email(email)
        display = _text(name, "name", max_length=200, required=False) or address.split("@")[0]
        if not isinstance(password, str):
            raise ConvexError("PASSWORD_TOO_SHORT", "Choose a password", path="password")
        check_password_rules(password, email=address)
        await self._spend(("auth.signUp.email", address), ("auth.signUp.ip", client.ip_address))
        password_hash = await self.passwords.hash(password)

        async def create(db: SystemDatabase) -> tuple[str, Document, Document]:
            existing = await db.query(USERS).with_index("by_email", email=address).first()
            if existing is not None:
                raise ConvexError(
                    "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL",
                    "An account with this email already exists. Use another email.",
                )
            now = db.now_ms
            user_fields = {
                "email": address,
                "name": display,
                "emailVerified": False,
                "createdAt": now,
                "updatedAt": now,
            }
            user_id = await db.insert(USERS, user_fields)
            await db.insert(
                ACCOUNTS,
                {
                    "userId": user_id,
                    "providerId": CREDENTIAL,
                    "accountId": user_id,
                    "passwordHash": password_hash,
                    "createdAt": now,
                    "updatedAt": now,
                },
            )
            token, session = await self._sign_in_user(db, user_id, client)
            return token, session, {"_id": user_id, **user_fields}

        (token, session, user), _ = await self.engine.system_write(
            create, label="_system/auth:signUp"
        )
        return SignedIn(token, session, user)

    async def sign_in(self, email: Any, password: Any, client: ClientInfo) -> SignedIn:
        if not isinstance(password, str) or len(password) > 1024:
            raise ConvexError(
                ErrorCode.INVALID_ARGUMENT, "password must be a string", path="password"
            )
        try:
            address = normalise_email(email)
        except ConvexError:
            address = None
        await self._spend(("auth.signIn.email", address), ("auth.signIn.ip", client.ip_address))

        async def lookup(db: SystemDatabase) -> tuple[Document, Document] | None:
            if address is None:
                return None
            user = await db.query(USERS).with_index("by_email", email=address).first()
            if user is None:
                return None
            account = await (
                db.query(ACCOUNTS)
                .with_index("by_user", userId=user["_id"], providerId=CREDENTIAL)
                .first()
            )
            return None if account is None else (user, account)

        found = await self.engine.system_read(lookup)
        # Same argon2 work whether or not the email is known (a dummy hash stands in).
        ok, rehash = await self.passwords.verify(
            found[1]["passwordHash"] if found else None, password
        )
        if not ok or found is None:
            raise ConvexError("INVALID_EMAIL_OR_PASSWORD", "Invalid email or password")
        user, account = found

        async def start(db: SystemDatabase) -> tuple[str, Document]:
            if rehash is not None:
                await db.patch(account["_id"], {"passwordHash": rehash, "updatedAt": db.now_ms})
            return await self._sign_in_user(db, user["_id"], client)

        (token, session), _ = await self.engine.system_write(start, label="_system/auth:signIn")
        return SignedIn(token, session, user)

    # ---- magic links --------------------------------------------------------------------

    def check_callback(self, callback_url: Any) -> str | None:
        """Only same-site or trusted destinations: no open redirects."""
        if callback_url is None or callback_url == "":
            return None
        if not isinstance(callback_url, str) or len(callback_url) > 2048:
            raise ConvexError(
                "INVALID_CALLBACK_URL", "callbackURL is not allowed", path="callbackURL"
            )
        parts = urlsplit(callback_url)
        if (
            not parts.scheme
            and not parts.netloc
            and callback_url.startswith("/")
            and not callback_url.startswith("//")
        ):
            return callback_url
        origin = f"{parts.scheme}://{parts.netloc}"
        base = urlsplit(self.config.base_url)
        if origin == f"{base.scheme}://{base.netloc}" or origin in self.config.trusted_origins:
            return callback_url
        raise ConvexError("INVALID_CALLBACK_URL", "callbackURL is not allowed", path="callbackURL")

    async def request_magic_link(self, email: Any, callback_url: Any, client: ClientInfo) -> None:
        address = normalise_email(email)
        callback = self.check_callback(callback_url)
        await self._spend(("auth.mail.email", address), ("auth.mail.ip", client.ip_address))
        token = sessions.new_token(self.engine.runtime)
        # A person clicking the link in a browser lands on the site, signed in (Better Auth
        # does the same); a client calling verify itself passes no callbackURL and gets JSON.
        query = {"token": token, "callbackURL": callback or "/"}
        link = f"{self.config.base_url.rstrip('/')}/api/auth/magic-link/verify?{urlencode(query)}"
        minutes = int(self.config.magic_link_ttl.total_seconds() // 60)

        async def store(db: SystemDatabase) -> None:
            now = db.now_ms
            await db.insert(
                VERIFICATIONS,
                {
                    "purpose": "magic-link",
                    "identifierHash": sessions.token_hash(token),
                    "value": {"email": address, **({"callbackURL": callback} if callback else {})},
                    "expiresAt": now + self.config.magic_link_ttl.total_seconds() * 1000,
                    "createdAt": now,
                },
            )
            await queue_mail(
                self.engine,
                db,
                Mail(
                    to=address,
                    subject="Your sign-in link",
                    text=(
                        f"Sign in by opening this link within {minutes} minutes:\n\n{SECRET}\n\n"
                        "If you did not ask for it, ignore this mail: nothing happens without it."
                    ),
                    secret=link,  # sealed in the outbox, rendered only at send time
                ),
            )

        await self.engine.system_write(store, label="_system/auth:magicLink")

    async def verify_magic_link(self, token: Any, client: ClientInfo) -> SignedIn:
        if not isinstance(token, str) or not token or len(token) > 256:
            raise ConvexError("INVALID_TOKEN", "This link is invalid or has expired")

        async def consume(db: SystemDatabase) -> SignedIn:
            entry = await (
                db.query(VERIFICATIONS)
                .with_index(
                    "by_identifier", purpose="magic-link", identifierHash=sessions.token_hash(token)
                )
                .first()
            )
            now = db.now_ms
            if entry is None or entry["expiresAt"] <= now:
                raise ConvexError("INVALID_TOKEN", "This link is invalid or has expired")
            await db.delete(entry["_id"])  # single use: the same transaction signs in
            address = entry["value"]["email"]
            user = await db.query(USERS).with_index("by_email", email=address).first()
            if user is None:
                fields = {
                    "email": address,
                    "name": address.split("@")[0],
                    "emailVerified": True,
                    "createdAt": now,
                    "updatedAt": now,
                }
                user = {"_id": await db.insert(USERS, fields), **fields}
            elif not user["emailVerified"]:
                await db.patch(user["_id"], {"emailVerified": True, "updatedAt": now})
                user = {**user, "emailVerified": True}
            session_token, session = await self._sign_in_user(db, user["_id"], client)
            return SignedIn(session_token, session, user, entry["value"].get("callbackURL"))

        signed_in, _ = await self.engine.system_write(consume, label="_system/auth:magicLinkVerify")
        return signed_in

    # ---- OAuth --------------------------------------------------------------------------

    def _oauth(self) -> OAuthClient:
        if self.oauth is None:
            raise ConvexError("PROVIDER_NOT_FOUND", "No sign-in provider is configured")
        return self.oauth

    async def begin_oauth(self, provider: Any, callback_url: Any) -> str:
        if not isinstance(provider, str) or len(provider) > 64:
            raise ConvexError("PROVIDER_NOT_FOUND", "Unknown provider", path="provider")
        callback = self.check_callback(callback_url)
        redirect_uri = f"{self.config.base_url.rstrip('/')}/api/auth/callback/{provider}"
        url, pending = await self._oauth().begin(provider, redirect_uri)

        async def store(db: SystemDatabase) -> None:
            now = db.now_ms
            await db.insert(
                VERIFICATIONS,
                {
                    "purpose": "oauth",
                    "identifierHash": sessions.token_hash(pending.state),
                    "value": {
                        "provider": pending.provider,
                        "nonce": pending.nonce,
                        "codeVerifier": pending.code_verifier,
                        "redirectUri": pending.redirect_uri,
                        "createdAt": to_ms(pending.created_at),
                        **({"callbackURL": callback} if callback else {}),
                    },
                    "expiresAt": now + self.config.oauth_ttl.total_seconds() * 1000,
                    "createdAt": now,
                },
            )

        await self.engine.system_write(store, label="_system/auth:oauthBegin")
        return url

    async def finish_oauth(
        self, provider: str, code: Any, state: Any, client: ClientInfo
    ) -> SignedIn:
        if not isinstance(code, str) or not isinstance(state, str) or not code or not state:
            raise ConvexError("OAUTH_FAILED", "The provider's answer is incomplete")
        if len(code) > 2048 or len(state) > 256:
            raise ConvexError("OAUTH_FAILED", "The provider's answer is malformed")

        async def take(db: SystemDatabase) -> Document | None:
            entry = await (
                db.query(VERIFICATIONS)
                .with_index(
                    "by_identifier", purpose="oauth", identifierHash=sessions.token_hash(state)
                )
                .first()
            )
            if entry is not None:
                await db.delete(entry["_id"])  # a state is good for one callback only
            return entry

        entry, _ = await self.engine.system_write(take, label="_system/auth:oauthState")
        if (
            entry is None
            or entry["value"]["provider"] != provider
            or entry["expiresAt"] <= self._now_ms()
        ):
            raise ConvexError("OAUTH_FAILED", "This sign-in attempt is unknown or has expired")
        value = entry["value"]
        pending = PendingLogin(
            provider=provider,
            state=state,
            nonce=value["nonce"],
            code_verifier=value["codeVerifier"],
            redirect_uri=value["redirectUri"],
            created_at=from_ms(value["createdAt"]),
        )
        profile = await self._oauth().finish(pending, code=code, state=state)
        signed_in = await self.sign_in_with_profile(profile, client)
        return SignedIn(
            signed_in.token, signed_in.session, signed_in.user, value.get("callbackURL")
        )

    async def sign_in_with_profile(self, profile: VerifiedProfile, client: ClientInfo) -> SignedIn:
        """Link or create the user behind a provider's verified profile, and sign them in.

        An existing user is linked by email only when the provider vouches for the address
        (``email_verified``): otherwise anyone could claim an account by registering its email
        at a lax provider.
        """
        address = normalise_email(profile.email) if profile.email else None

        async def link(db: SystemDatabase) -> SignedIn:
            now = db.now_ms
            account = await (
                db.query(ACCOUNTS)
                .with_index("by_provider", providerId=profile.provider, accountId=profile.subject)
                .first()
            )
            user: Document | None
            if account is not None:
                user = await db.get(account["userId"])
            else:
                if address is None:
                    raise ConvexError("OAUTH_FAILED", "The provider did not share an email address")
                user = await db.query(USERS).with_index("by_email", email=address).first()
                if user is not None and not profile.email_verified:
                    raise ConvexError(
                        "OAUTH_ACCOUNT_NOT_LINKED",
                        "Sign in another way first: the provider has not verified this email",
                    )
                if user is None:
                    fields = {
                        "email": address,
                        "name": profile.name or address.split("@")[0],
                        "emailVerified": profile.email_verified,
                        "image": profile.picture,
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    user = {"_id": await db.insert(USERS, fields), **fields}
                await db.insert(
                    ACCOUNTS,
                    {
                        "userId": user["_id"],
                        "providerId": profile.provider,
                        "accountId": profile.subject,
                        "createdAt": now,
                        "updatedAt": now,
                    },
                )
            if user is None:
                raise ConvexError("OAUTH_FAILED", "The linked user no longer exists")
            token, session = await self._sign_in_user(db, user["_id"], client)
            return SignedIn(token, session, user)

        signed_in, _ = await self.engine.system_write(link, label="_system/auth:oauthLink")
        return signed_in

    # ---- sessions -----------------------------------------------------------------------

    async def session(self, token: str | None) -> sessions.SessionInfo | None:
        if not token:
            return None
        now = self._now_ms()
        return await self.engine.system_read(lambda db: sessions.find_session(db, token, now))

    async def require_session(self, token: str | None) -> sessions.SessionInfo:
        info = await self.session(token)
        if info is None:
            raise ConvexError(ErrorCode.UNAUTHENTICATED, "You are not signed in")
        return info

    async def sign_out(self, token: str | None) -> bool:
        """Revoke the session behind ``token``; False when it was already gone (signing out
        is still a success then: the caller ends up signed out either way)."""
        info = await self.session(token)
        if info is None:
            return False
        await self.engine.system_write(
            lambda db: sessions.revoke(db, info.session["_id"]), label="_system/auth:signOut"
        )
        return True

    async def list_sessions(self, token: str | None) -> list[Document]:
        info = await self.require_session(token)
        now = self._now_ms()
        found = await self.engine.system_read(
            lambda db: sessions.user_sessions(db, info.user["_id"])
        )
        return [s for s in found if s["expiresAt"] > now]

    async def revoke_session(
        self, token: str | None, session_id: Any, target_token: Any = None
    ) -> bool:
        """Revoke one of the caller's sessions, named by its ``id`` or (as Better Auth's client
        does) by its ``token``. Someone else's session answers like an unknown one."""
        info = await self.require_session(token)
        if target_token is not None:
            if not isinstance(target_token, str) or len(target_token) > 256:
                raise ConvexError(
                    ErrorCode.INVALID_ARGUMENT, "token must be a string", path="token"
                )
            found = await self.session(target_token)
            session_id = found.session["_id"] if found is not None else ""
        elif not isinstance(session_id, str):
            raise ConvexError(ErrorCode.INVALID_ARGUMENT, "id must be a session id", path="id")

        async def revoke(db: SystemDatabase) -> bool:
            target = await sessions.live_session(db, session_id, db.now_ms)
            if target is None or target["userId"] != info.user["_id"]:
                return False  # not yours: the same answer as not found
            return await sessions.revoke(db, session_id)

        revoked, _ = await self.engine.system_write(revoke, label="_system/auth:revokeSession")
        return revoked

    async def revoke_other_sessions(self, token: str | None) -> int:
        info = await self.require_session(token)
        count, _ = await self.engine.system_write(
            lambda db: sessions.revoke_all(db, info.user["_id"], keep=info.session["_id"]),
            label="_system/auth:revokeOthers",
        )
        return count
