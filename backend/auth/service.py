"""Signing in and out: email and password, magic links, email verification, OAuth, and tokens
for the client.

Each flow is a few short serializable transactions around the slow parts (argon2 runs between
transactions, off the event loop; OAuth calls the provider between them). Rate limits are
spent, and a password attempt is counted as a failure, in a transaction of their own *before*
the check they guard, so a failed attempt still counts and parallel guesses cannot outrun the
count (``lockout.py``). Answers never reveal whether an email is known: sign-in for an unknown
email does the same argon2 work, is counted and locked the same way, and fails the same way;
a magic-link request always answers ``{status: true}`` and always sends a mail; a request for
a verification mail always answers ``{status: true}``.

Clients. A caller that presents a valid device cookie for the account (``devices.py``) is one
of the account's known devices: its failures and rate limits are its own, so strangers'
guesses never lock it out. Everyone else is counted by address and on the account's record.

Addresses. An account's address is unproven until a magic link, a verification link or an
OAuth provider that vouches for it proves it; the first proof takes the account over
(``proof.py``). With ``require_email_verification`` an unproven password account gets no
session at all (Better Auth's ``requireEmailVerification``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from email_validator import EmailNotValidError, validate_email

from backend.auth import devices, mails, sessions
from backend.auth.devices import Device, DeviceCookies
from backend.auth.limits import Budgets
from backend.auth.lockout import Attempt, Lockout, Refusal, RefusalCode
from backend.auth.oauth import OAuthClient, PendingLogin, VerifiedProfile
from backend.auth.passwords import Passwords, check_password_rules
from backend.auth.proof import credential, password_binding, prove_address
from backend.auth.tables import ACCOUNTS, USERS, VERIFICATIONS
from backend.engine import Engine
from backend.errors import ConvexError, ErrorCode
from backend.mail import queue_mail
from backend.runtime import from_ms, to_ms
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import ClientInfo
from backend.udf.steps import Steps
from backend.values.ids import make_id

Document = dict[str, Any]
CREDENTIAL = "credential"


@dataclass(frozen=True)
class SignedIn:
    token: str
    session: Document
    user: Document
    callback_url: str | None = None
    device: Device | None = None  # the device cookie to set


@dataclass(frozen=True)
class Unverified:
    """An answer without a session: the account exists (or seems to) but its address is not
    proven yet, and ``require_email_verification`` is on."""

    user: Document


@dataclass(frozen=True)
class EmailVerified:
    """A verification link was followed: the user, signed in when this link proved the
    address (None when it had been proven already)."""

    user: Document | None
    signed_in: SignedIn | None
    callback_url: str | None = None


@dataclass
class AuthConfig:
    secret: str
    base_url: str
    trusted_origins: list[str] = field(default_factory=list)
    session_ttl: timedelta = sessions.DEFAULT_SESSION_TTL
    magic_link_ttl: timedelta = timedelta(minutes=10)
    verification_ttl: timedelta = timedelta(hours=1)
    oauth_ttl: timedelta = timedelta(minutes=10)
    require_email_verification: bool = False


def normalise_email(email: Any) -> str:
    """The address in lower case, or ``INVALID_EMAIL``."""
    if not isinstance(email, str) or len(email) > 254:
        raise ConvexError(ErrorCode.INVALID_EMAIL, "Enter a valid email address", path="email")
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ConvexError(
            ErrorCode.INVALID_EMAIL, "Enter a valid email address", path="email"
        ) from None
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


def _rate_limited(retry_after_ms: int | None) -> ConvexError:
    return ConvexError(
        ErrorCode.RATE_LIMITED, "Too many attempts. Try again later.", retryAfterMs=retry_after_ms
    )


def _refused(refusal: Refusal) -> ConvexError:
    if refusal.code is RefusalCode.PASSWORD_LOCKED:
        return ConvexError(
            ErrorCode.PASSWORD_LOCKED,
            "Too many wrong passwords: sign in with a link sent to your email to unlock "
            "password sign-in.",
        )
    return _rate_limited(refusal.retry_after_ms)


@dataclass(frozen=True)
class _Admission:
    found: tuple[Document, Document] | None  # the user and their credential
    attempt: Attempt | None
    refused: ConvexError | None


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
        self.lockout = Lockout(config.secret)
        self.devices = DeviceCookies(config.secret)
        self.budgets = Budgets(config.secret)

    @property
    def runtime(self) -> Any:
        return self.engine.runtime

    def _now_ms(self) -> float:
        return to_ms(self.engine.runtime.now())

    def _mac(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x1f{value}".encode()
        return hmac.new(self.config.secret.encode(), message, hashlib.sha256).hexdigest()

    async def _spend(self, *limits: tuple[str, str | None]) -> None:
        async def spend(db: SystemDatabase) -> int | None:
            return await self.budgets.spend(db, list(limits))

        retry_after, _ts = await self.engine.system_write(spend, label="_system/auth:rateLimit")
        if retry_after is not None:
            raise _rate_limited(retry_after)

    def _link(self, path: str, **query: str) -> str:
        return f"{self.config.base_url.rstrip('/')}{path}?{urlencode(query)}"

    async def _sign_in_user(
        self, db: SystemDatabase, user_id: str, client: ClientInfo, device: Device | None
    ) -> tuple[str, Document, Device]:
        """A new session for ``user_id`` on ``device`` (a new device if None), which the user
        now knows."""
        device = device or self.devices.mint(self.engine.runtime)
        await devices.remember(db, user_id, device)
        token, session = await sessions.create_session(
            db,
            self.engine.runtime,
            user_id,
            now_ms=db.now_ms,
            ttl=self.config.session_ttl,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            device_hash=device.hash,
        )
        return token, session, device

    async def _signed_in(
        self,
        db: SystemDatabase,
        user: Document,
        client: ClientInfo,
        device: Device | None,
        callback_url: str | None = None,
    ) -> SignedIn:
        token, session, device = await self._sign_in_user(db, user["_id"], client, device)
        return SignedIn(token, session, user, callback_url, device)

    # ---- email and password -------------------------------------------------------------

    async def sign_up(
        self,
        email: Any,
        password: Any,
        name: Any,
        client: ClientInfo,
        *,
        callback_url: Any = None,
        device_cookie: str | None = None,
    ) -> SignedIn | Unverified:
        """Create a password account and mail a link that confirms it. Signed in at once,
        unless ``require_email_verification``: then ``Unverified``, and an address that has
        an account already gets the same answer (and its owner a mail saying so)."""
        address = normalise_email(email)
        display = _text(name, "name", max_length=200, required=False) or address.split("@")[0]
        if not isinstance(password, str):
            raise ConvexError(ErrorCode.PASSWORD_TOO_SHORT, "Choose a password", path="password")
        check_password_rules(password, email=address)
        callback = self.check_callback(callback_url)
        # USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL says an email has an account (Better Auth's
        # client expects it): asking about one email is limited wherever the asking comes from
        await self._spend(("auth.signUp.email", address), ("auth.signUp.ip", client.ip_address))
        password_hash = await self.passwords.hash(password)
        required = self.config.require_email_verification
        device = self.devices.read(device_cookie)

        async def create(db: SystemDatabase) -> SignedIn | Unverified:
            existing = await db.query(USERS).with_index("by_email", email=address).first()
            now = db.now_ms
            user_fields = {
                "email": address,
                "name": display,
                "emailVerified": False,
                "image": None,
                "createdAt": now,
                "updatedAt": now,
            }
            if existing is not None:
                if not required:
                    raise ConvexError(
                        ErrorCode.USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL,
                        "An account with this email already exists. Use another email.",
                    )
                # As Better Auth does under requireEmailVerification: the answer a new
                # account gets, so that sign-up does not tell who has an account here. The
                # owner hears of it, within the inbox's mail budget.
                if await self.budgets.mail(db, address, client, device) is None:
                    await self._mail_existing_owner(db, address)
                fake_id = make_id(USERS, self.engine.runtime.random.token_bytes(16))
                return Unverified({"_id": fake_id, **user_fields})
            user_id = await db.insert(USERS, user_fields)
            account = {
                "userId": user_id,
                "providerId": CREDENTIAL,
                "accountId": user_id,
                "passwordHash": password_hash,
                "passwordSetAt": now,
                "createdAt": now,
                "updatedAt": now,
            }
            account_id = await db.insert(ACCOUNTS, account)
            user = {"_id": user_id, **user_fields}
            await self._queue_verification(db, user, {"_id": account_id, **account}, callback)
            if required:
                return Unverified(user)
            return await self._signed_in(db, user, client, device)

        created, _ = await self.engine.system_write(create, label="_system/auth:signUp")
        return created

    async def sign_in(
        self,
        email: Any,
        password: Any,
        client: ClientInfo,
        *,
        callback_url: Any = None,
        device_cookie: str | None = None,
    ) -> SignedIn:
        """Check the password and open a session. ``INVALID_EMAIL_OR_PASSWORD`` alike for a
        wrong password and an unknown email; ``RATE_LIMITED`` (with ``retryAfterMs``) while
        this client is locked out, and ``PASSWORD_LOCKED`` at the hard stop, both without
        looking at the password; ``EMAIL_NOT_VERIFIED`` for the right password of an
        unproven account under ``require_email_verification`` (a new link is mailed)."""
        if not isinstance(password, str) or len(password) > 1024:
            raise ConvexError(
                ErrorCode.INVALID_ARGUMENT, "password must be a string", path="password"
            )
        try:
            address = normalise_email(email)
        except ConvexError:
            address = None
        callback = self.check_callback(callback_url)
        presented = self.devices.read(device_cookie)
        # In steps (udf/steps.py): spend an attempt, run argon2 outside any transaction, then
        # settle the attempt and open the session.
        steps = self.engine.steps("_system/auth:signIn")

        async def admit(db: SystemDatabase) -> _Admission:
            found = await self._password_account(db, address)
            known = (
                found is not None
                and presented is not None
                and await devices.is_known(db, found[0]["_id"], presented)
            )
            if known and presented is not None and found is not None:
                attempt = self.lockout.attempt(address or "", (found[0]["_id"], presented.hash))
            else:
                attempt = self.lockout.attempt(address or "", None)
            limits = Budgets.sign_in(address, client, presented if known else None)
            wait = await self.budgets.spend(db, limits)
            if wait is not None:
                return _Admission(found, None, _rate_limited(wait))
            if address is None:
                return _Admission(None, None, None)
            refusal = await self.lockout.admit(db, attempt)
            return _Admission(found, attempt, _refused(refusal) if refusal else None)

        admission = await steps.transaction(lambda system: admit(system.db))
        if admission.refused is not None:
            raise admission.refused
        found, attempt = admission.found, admission.attempt
        # Same argon2 work whether or not the email is known (a dummy hash stands in).
        ok, rehash = await self.passwords.verify(
            found[1]["passwordHash"] if found else None, password
        )
        if not ok or found is None or attempt is None:
            if attempt is not None and attempt.device_key is not None:
                failed: Attempt = attempt  # counted on the account only now (lockout.py)
                await steps.transaction(
                    lambda system: self.lockout.settle(system.db, failed, ok=False)
                )
            raise ConvexError(ErrorCode.INVALID_EMAIL_OR_PASSWORD, "Invalid email or password")
        user_id, account, passed = found[0]["_id"], found[1], attempt

        async def start(db: SystemDatabase) -> SignedIn | Unverified | None:
            # The password checked must still be the account's: a takeover (proof.py) may
            # have dropped it while argon2 ran.
            current = await db.get(account["_id"])
            if current is None or current.get("passwordHash") != account["passwordHash"]:
                return None
            await self.lockout.settle(db, passed, ok=True)
            if rehash is not None:
                await db.patch(account["_id"], {"passwordHash": rehash, "updatedAt": db.now_ms})
            user = await db.get(user_id)
            if user is None:
                return None
            if self.config.require_email_verification and not user["emailVerified"]:
                # Better Auth's sendOnSignIn: another link, within the mail budget.
                if await self.budgets.mail(db, user["email"], client, presented) is None:
                    await self._queue_verification(db, user, account, callback)
                return Unverified(user)
            return await self._signed_in(db, user, client, presented)

        started = await steps.transaction(lambda system: start(system.db))
        if started is None:
            raise ConvexError(ErrorCode.INVALID_EMAIL_OR_PASSWORD, "Invalid email or password")
        if isinstance(started, Unverified):
            raise ConvexError(ErrorCode.EMAIL_NOT_VERIFIED, "Email not verified")
        return started

    async def _password_account(
        self, db: SystemDatabase, address: str | None
    ) -> tuple[Document, Document] | None:
        if address is None:
            return None
        user = await db.query(USERS).with_index("by_email", email=address).first()
        if user is None:
            return None
        account = await credential(db, user["_id"])
        if account is None or account.get("passwordHash") is None:
            return None
        return user, account

    # ---- links by mail: magic links and email verification ------------------------------

    def check_callback(self, callback_url: Any) -> str | None:
        """Only same-site or trusted destinations: no open redirects."""
        if callback_url is None or callback_url == "":
            return None
        if not isinstance(callback_url, str) or len(callback_url) > 2048:
            raise ConvexError(
                ErrorCode.INVALID_CALLBACK_URL, "callbackURL is not allowed", path="callbackURL"
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
        raise ConvexError(
            ErrorCode.INVALID_CALLBACK_URL, "callbackURL is not allowed", path="callbackURL"
        )

    async def request_magic_link(
        self,
        email: Any,
        callback_url: Any,
        client: ClientInfo,
        *,
        device_cookie: str | None = None,
    ) -> None:
        address = normalise_email(email)
        callback = self.check_callback(callback_url)
        device = self.devices.read(device_cookie)
        token = sessions.new_token(self.engine.runtime)
        # A person clicking the link in a browser lands on the site, signed in (Better Auth
        # does the same); a client calling verify itself passes no callbackURL and gets JSON.
        link = self._link("/api/auth/magic-link/verify", token=token, callbackURL=callback or "/")
        minutes = int(self.config.magic_link_ttl.total_seconds() // 60)

        async def store(db: SystemDatabase) -> int | None:
            wait = await self.budgets.mail(db, address, client, device)
            if wait is not None:
                return wait
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
                self.engine.system_context(db), mails.magic_link(address, link, minutes)
            )
            return None

        wait, _ = await self.engine.system_write(store, label="_system/auth:magicLink")
        if wait is not None:
            raise _rate_limited(wait)

    async def _take_link(
        self, db: SystemDatabase, purpose: str, token: str
    ) -> tuple[Document | None, bool]:
        """Consume a one-time entry (a link's, an OAuth state's): ``(entry, expired)``; an
        expired one is consumed too."""
        entry = await (
            db.query(VERIFICATIONS)
            .with_index("by_identifier", purpose=purpose, identifierHash=sessions.token_hash(token))
            .first()
        )
        if entry is None:
            return None, False
        await db.delete(entry["_id"])
        if entry["expiresAt"] <= db.now_ms:
            return None, True
        return entry, False

    async def verify_magic_link(
        self, token: Any, client: ClientInfo, *, device_cookie: str | None = None
    ) -> SignedIn:
        """Sign in by a magic link, creating the user if new. The link proves the address:
        the first proof takes the account over (``proof.py``)."""
        if not isinstance(token, str) or not token or len(token) > 256:
            raise ConvexError(ErrorCode.INVALID_TOKEN, "This link is invalid or has expired")
        device = self.devices.read(device_cookie)

        async def consume(db: SystemDatabase) -> SignedIn | None:
            entry, _expired = await self._take_link(db, "magic-link", token)
            if entry is None:
                return None
            now = db.now_ms
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
            else:
                user, _ = await prove_address(db, user, self.lockout)
            return await self._signed_in(
                db, user, client, device, entry["value"].get("callbackURL")
            )

        signed_in, _ = await self.engine.system_write(consume, label="_system/auth:magicLinkVerify")
        if signed_in is None:  # the spent (or expired) entry is gone either way
            raise ConvexError(ErrorCode.INVALID_TOKEN, "This link is invalid or has expired")
        return signed_in

    async def _queue_verification(
        self,
        db: SystemDatabase,
        user: Document,
        account: Document | None,
        callback: str | None,
    ) -> None:
        """Mail a link that proves ``user``'s address and confirms the account as it stands
        (its password included: the mail asks whether the reader created it)."""
        token = sessions.new_token(self.engine.runtime)
        link = self._link("/api/auth/verify-email", token=token, callbackURL=callback or "/")
        now = db.now_ms
        value: Document = {"email": user["email"], "userId": user["_id"]}
        binding = password_binding(account)
        if binding is not None:
            value["password"] = binding
        if callback:
            value["callbackURL"] = callback
        await db.insert(
            VERIFICATIONS,
            {
                "purpose": "email-verification",
                "identifierHash": sessions.token_hash(token),
                "value": value,
                "expiresAt": now + self.config.verification_ttl.total_seconds() * 1000,
                "createdAt": now,
            },
        )
        minutes = int(self.config.verification_ttl.total_seconds() // 60)
        site = self.config.base_url.rstrip("/")
        mail = mails.verification(user["email"], link, minutes, site)
        await queue_mail(self.engine.system_context(db), mail)

    async def _mail_existing_owner(self, db: SystemDatabase, address: str) -> None:
        site = self.config.base_url.rstrip("/")
        await queue_mail(self.engine.system_context(db), mails.existing_account(address, site))

    async def send_verification_email(
        self,
        email: Any,
        callback_url: Any,
        client: ClientInfo,
        *,
        session_token: str | None = None,
        device_cookie: str | None = None,
    ) -> None:
        """Mail a verification link (Better Auth's ``/send-verification-email``). Signed in:
        for the caller's own address only (``EMAIL_MISMATCH``), and not twice
        (``EMAIL_ALREADY_VERIFIED``). Signed out: the same answer for every address, and a
        mail only to an account that is not verified yet."""
        address = normalise_email(email)
        callback = self.check_callback(callback_url)
        device = self.devices.read(device_cookie)
        info = await self.session(session_token)
        if info is not None:
            if info.user["email"] != address:
                raise ConvexError(ErrorCode.EMAIL_MISMATCH, "Email mismatch")
            if info.user["emailVerified"]:
                raise ConvexError(ErrorCode.EMAIL_ALREADY_VERIFIED, "Email is already verified")

        async def send(db: SystemDatabase) -> int | None:
            wait = await self.budgets.mail(db, address, client, device)
            if wait is not None:
                return wait
            user = await db.query(USERS).with_index("by_email", email=address).first()
            if user is not None and not user["emailVerified"]:
                account = await credential(db, user["_id"])
                await self._queue_verification(db, user, account, callback)
            return None

        wait, _ = await self.engine.system_write(send, label="_system/auth:sendVerification")
        if wait is not None:
            raise _rate_limited(wait)

    async def verify_email(
        self, token: Any, client: ClientInfo, *, device_cookie: str | None = None
    ) -> EmailVerified:
        """Follow a verification link: the address is proven (the first proof takes the
        account over, keeping the password the link names) and the follower signed in.
        ``INVALID_TOKEN`` for an unknown or spent link, ``TOKEN_EXPIRED`` for a late one."""
        if not isinstance(token, str) or not token or len(token) > 256:
            raise ConvexError(ErrorCode.INVALID_TOKEN, "Invalid token")
        device = self.devices.read(device_cookie)

        async def consume(db: SystemDatabase) -> EmailVerified | ErrorCode:
            entry, expired = await self._take_link(db, "email-verification", token)
            if entry is None:
                return ErrorCode.TOKEN_EXPIRED if expired else ErrorCode.INVALID_TOKEN
            value = entry["value"]
            callback = value.get("callbackURL")
            user = await db.get(value["userId"])
            if user is None or user["email"] != value["email"]:
                return ErrorCode.INVALID_TOKEN
            if user["emailVerified"]:  # proven meanwhile (Better Auth: {status, user: null})
                return EmailVerified(None, None, callback)
            user, _ = await prove_address(
                db, user, self.lockout, confirms_password=value.get("password")
            )
            signed_in = await self._signed_in(db, user, client, device, callback)
            return EmailVerified(user, signed_in, callback)

        verified, _ = await self.engine.system_write(consume, label="_system/auth:verifyEmail")
        if isinstance(verified, ErrorCode):
            message = "Token expired" if verified is ErrorCode.TOKEN_EXPIRED else "Invalid token"
            raise ConvexError(verified, message)
        return verified

    # ---- OAuth --------------------------------------------------------------------------

    def _oauth(self) -> OAuthClient:
        if self.oauth is None:
            raise ConvexError(ErrorCode.PROVIDER_NOT_FOUND, "No sign-in provider is configured")
        return self.oauth

    def state_binding(self, state: str) -> str:
        """What the OAuth state cookie holds: a keyed hash of the state, which only the server
        can make, so the callback knows the browser bringing ``state`` is the one that began."""
        return self._mac("oauth-state", state)

    async def begin_oauth(self, provider: Any, callback_url: Any) -> tuple[str, str]:
        """The provider's authorization URL, and the state binding to set as a cookie."""
        if not isinstance(provider, str) or len(provider) > 64:
            raise ConvexError(ErrorCode.PROVIDER_NOT_FOUND, "Unknown provider", path="provider")
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
        return url, self.state_binding(pending.state)

    async def finish_oauth(
        self,
        provider: str,
        code: Any,
        state: Any,
        client: ClientInfo,
        *,
        state_cookie: str | None = None,
        device_cookie: str | None = None,
    ) -> SignedIn:
        """Finish a sign-in begun in *this* browser: ``state_cookie`` must bind ``state``
        (login CSRF: otherwise an attacker's callback URL, opened by a victim, would sign the
        victim in as the attacker)."""
        if not isinstance(code, str) or not isinstance(state, str) or not code or not state:
            raise ConvexError(ErrorCode.OAUTH_FAILED, "The provider's answer is incomplete")
        if len(code) > 2048 or len(state) > 256:
            raise ConvexError(ErrorCode.OAUTH_FAILED, "The provider's answer is malformed")
        # Bytes: compare_digest refuses non-ASCII str, and both come from the request.
        expected = self.state_binding(state).encode()
        presented = (state_cookie or "").encode("utf-8", "replace")
        if not hmac.compare_digest(expected, presented):
            raise ConvexError(
                ErrorCode.OAUTH_FAILED, "This sign-in was not started in this browser"
            )

        # In steps (udf/steps.py): take the state, exchange the code with the provider outside
        # any transaction, then link and sign in. A state is good for one callback only, and
        # for a few minutes.
        steps = self.engine.steps("_system/auth:oauthFinish")
        entry, _expired = await steps.transaction(
            lambda system: self._take_link(system.db, "oauth", state)
        )
        if entry is None or entry["value"]["provider"] != provider:
            raise ConvexError(
                ErrorCode.OAUTH_FAILED, "This sign-in attempt is unknown or has expired"
            )
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
        signed_in = await self.sign_in_with_profile(
            profile, client, device_cookie=device_cookie, steps=steps
        )
        return SignedIn(
            signed_in.token,
            signed_in.session,
            signed_in.user,
            value.get("callbackURL"),
            signed_in.device,
        )

    async def sign_in_with_profile(
        self,
        profile: VerifiedProfile,
        client: ClientInfo,
        *,
        device_cookie: str | None = None,
        steps: Steps | None = None,
    ) -> SignedIn:
        """Link or create the user behind a provider's verified profile, and sign them in.

        An existing user is linked by email only when the provider vouches for the address
        (``email_verified``): otherwise anyone could claim an account by registering its email
        at a lax provider. A provider that vouches for the address proves it: the first proof
        takes the account over (``proof.py``).
        """
        address = normalise_email(profile.email) if profile.email else None
        device = self.devices.read(device_cookie)

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
                if user is None:
                    raise ConvexError(ErrorCode.OAUTH_FAILED, "The linked user no longer exists")
                if profile.email_verified and address == user["email"]:
                    if account.get("emailVerified") is not True:
                        await db.patch(account["_id"], {"emailVerified": True, "updatedAt": now})
                    user, _ = await prove_address(
                        db, user, self.lockout, keep_identity=account["_id"]
                    )
                return await self._signed_in(db, user, client, device)
            if address is None:
                raise ConvexError(
                    ErrorCode.OAUTH_FAILED, "The provider did not share an email address"
                )
            user = await db.query(USERS).with_index("by_email", email=address).first()
            if user is not None and not profile.email_verified:
                raise ConvexError(
                    ErrorCode.OAUTH_ACCOUNT_NOT_LINKED,
                    "Sign in another way first: the provider has not verified this email",
                )
            existed = user is not None
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
            identity = await db.insert(
                ACCOUNTS,
                {
                    "userId": user["_id"],
                    "providerId": profile.provider,
                    "accountId": profile.subject,
                    "emailVerified": profile.email_verified,
                    "createdAt": now,
                    "updatedAt": now,
                },
            )
            if existed:  # linked by a vouched-for address: that proves it
                user, _ = await prove_address(db, user, self.lockout, keep_identity=identity)
            return await self._signed_in(db, user, client, device)

        steps = steps or self.engine.steps("_system/auth:oauthLink")
        return await steps.transaction(lambda system: link(system.db))

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
