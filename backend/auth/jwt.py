"""Signing keys and JWTs for the Convex client.

The Convex client authenticates its socket with a short-lived JWT that it fetches from
``GET /api/auth/convex/token`` and refetches before ``exp``. ``KeyRing`` mints those tokens and
serves the public keys (``GET /api/auth/jwks``); ``JwtVerifier`` checks them on the socket.

Keys. Tokens are ES256 (ECDSA on P-256): small signatures, and a public key that anyone may
fetch to verify them without being able to mint. Every key is a document of the ``_jwks``
system table, so every process of a deployment signs with the same key and accepts the same
ones. The private half is stored encrypted with AES-256-GCM under a key derived (HKDF-SHA256)
from the server secret, with the key's ``kid`` as associated data: a database dump alone does
not let anyone mint tokens, and a ciphertext cannot be moved onto another ``kid``.

Rotation. ``ensure_key`` (called at startup, and by ``mint`` whenever the current key has come
of age) reads every key, and in the same serializable transaction creates the first key,
rotates, and drops dead keys. Because reading and writing happen in one transaction, processes
that start together cannot both create a key: the loser's read of ``_jwks`` conflicts with the
winner's insert, the engine runs the loser again, and it then finds the winner's key. A rotated
key gets ``retiredAt`` and keeps verifying for ``keep_retired`` (at least the token lifetime, so
no token dies early), then it is deleted. For its first seconds a new key only waits: the old
one goes on signing until every process's verifier can have reloaded its keys, so that no
process refuses a token because it has not heard of the new key yet.

Verification. ``JwtVerifier`` holds a cache of public keys taken from a key source: the
database for a ``KeyRing``'s verifier, a fixed JWKS for ``from_jwks``. The allowed algorithm
of a token is the algorithm of the key its ``kid`` names, never what the token's header
claims: ``alg: none`` and HS256 signed with the public key as an HMAC secret (key confusion)
fail before any signature check. A ``kid`` the cache does not know makes it reload, at most
once per ``refresh_interval``, so a key minted by another process is picked up in seconds and
garbage ``kid`` values cannot hammer the database. Expiry is checked against the injected
clock (PyJWT's own checks read the wall clock, so they are turned off) with a small leeway.
Tokens are never logged and never appear in an error.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import jwt as pyjwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel

from backend.auth import jose
from backend.runtime import Clock, from_ms, to_ms
from backend.schema_definition import TableDef, table
from backend.transactions.transaction import Document, SystemDatabase
from backend.udf.context import Identity

if TYPE_CHECKING:
    from backend.engine import Engine

TABLE = "_jwks"
ALGORITHM = "ES256"
MAX_TOKEN_BYTES = 8 * 1024
REQUIRED_CLAIMS = ("sub", "sid", "iat", "exp", "iss", "aud")
# Claims the ring sets itself; ``extra`` may not override them.
_RESERVED_CLAIMS = frozenset({*REQUIRED_CLAIMS, "jti", "nbf"})
# Asymmetric algorithms only: a verifier never holds a secret that could also mint.
_VERIFY_ALGORITHMS = frozenset({"ES256", "RS256", "EdDSA"})
# Versioned, so a future change of derivation cannot silently reuse the old key.
_HKDF_INFO = b"stepup-backend/_jwks/private-key/v1"
_NONCE_BYTES = 12
# A new key signs only once every verifier can have seen it: longer than the reload interval.
_PUBLISH_DELAY = timedelta(seconds=10)
_REFRESH_INTERVAL = timedelta(seconds=5)


class SigningKey(BaseModel):
    """A document of ``_jwks``: one signing key, its private half encrypted."""

    kid: str
    alg: Literal["ES256"]
    publicJwk: dict[str, Any]
    privateKey: str  # base64(nonce + AES-GCM ciphertext of the PKCS#8 DER)
    createdAt: float  # ms since the epoch
    retiredAt: float | None = None


TABLES: dict[str, TableDef] = {
    TABLE: table(SigningKey).index("by_created", "createdAt"),
}


class InvalidToken(Exception):
    """A token that must not be accepted. ``reason`` is short and safe to show or log:
    "malformed", "bad signature", "unknown key", "missing claim", "wrong issuer",
    "wrong audience", "expired" or "not yet valid". It never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    subject: str
    session_id: str
    issued_at: datetime
    expires_at: datetime
    issuer: str
    raw: Mapping[str, Any]

    def identity(self) -> Identity:
        """The ``Identity`` that functions see as ``ctx.auth`` for this token."""
        return Identity(
            subject=self.subject, session_id=self.session_id, issuer=self.issuer, claims=self.raw
        )


@dataclass(frozen=True)
class VerificationKey:
    """A public key a verifier accepts, bound to exactly one algorithm."""

    kid: str
    algorithm: str
    jwk: pyjwt.PyJWK
    valid_until: datetime | None = None

    @classmethod
    def from_jwk(
        cls, data: Mapping[str, Any], *, valid_until: datetime | None = None
    ) -> VerificationKey:
        """Load a public JWK. Raises ``ValueError`` for a key without a ``kid``, a symmetric
        or private key, an algorithm other than ES256 (or RS256 / EdDSA when the JWK names it
        in ``alg``), or a key that does not fit its algorithm."""
        kid = data.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("a verification key needs a 'kid'")
        kty = data.get("kty")
        if kty == "oct":
            raise ValueError(f"key {kid}: symmetric keys are never accepted")
        if any(part in data for part in ("d", "p", "q")):
            raise ValueError(f"key {kid}: a verification key must not carry private parts")
        alg = data.get("alg", ALGORITHM if (kty, data.get("crv")) == ("EC", "P-256") else None)
        if not isinstance(alg, str) or alg not in _VERIFY_ALGORITHMS:
            raise ValueError(f"key {kid}: algorithm {alg!r} is not accepted; name it in 'alg'")
        expected = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}.get(alg)
        if (expected and (kty, data.get("crv")) != expected) or (alg == "RS256" and kty != "RSA"):
            raise ValueError(f"key {kid}: a {kty} key does not fit {alg}")
        try:
            jwk = jose.public_jwk(data, alg)
        except ValueError as exc:
            raise ValueError(f"key {kid}: {exc}") from exc
        return cls(kid, alg, jwk, valid_until)


KeySource = Callable[[], Awaitable[Mapping[str, VerificationKey]]]
"""Loads every key a verifier should accept, by ``kid``."""


class JwtVerifier:
    """Checks tokens against a set of public keys, by the injected clock.

    Build one with ``KeyRing.verifier()`` (keys from the database) or ``from_jwks`` (a fixed
    JWKS, for tests and external issuers).
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str | None,
        clock: Clock,
        leeway: timedelta = timedelta(seconds=5),
        refresh_interval: timedelta = _REFRESH_INTERVAL,
        max_age: timedelta | None = timedelta(minutes=1),
    ) -> None:
        self._source = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._leeway = leeway.total_seconds()
        self._refresh_interval = refresh_interval
        # Even with no unknown kid, reload now and then: keys deleted or retired elsewhere.
        self._max_age = max_age
        self._keys: Mapping[str, VerificationKey] = {}
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_jwks(
        cls,
        jwks: Mapping[str, Any],
        *,
        issuer: str,
        audience: str,
        clock: Clock,
        leeway: timedelta = timedelta(seconds=5),
    ) -> JwtVerifier:
        """A verifier for the fixed key set ``{"keys": [...]}``; needs no database.

        Keys whose ``use`` is not ``sig`` are skipped. Raises ``ValueError`` for a malformed
        set or key (see ``VerificationKey.from_jwk``) and for a ``kid`` listed twice.
        """
        listed = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(listed, list):
            raise ValueError("a JWKS is an object with a 'keys' list")
        keys: dict[str, VerificationKey] = {}
        for data in listed:
            if not isinstance(data, Mapping):
                raise ValueError("every entry of a JWKS is an object")
            if data.get("use", "sig") != "sig":
                continue
            key = VerificationKey.from_jwk(data)
            if key.kid in keys:
                raise ValueError(f"kid {key.kid} is listed twice")
            keys[key.kid] = key
        frozen = MappingProxyType(keys)

        async def static() -> Mapping[str, VerificationKey]:
            return frozen

        return cls(static, issuer=issuer, audience=audience, clock=clock, leeway=leeway)

    def invalidate(self) -> None:
        """Forget the cached keys: the next ``verify`` reloads them."""
        self._loaded_at = None

    async def verify(self, token: str) -> Claims:
        """The claims of ``token`` if it is valid now.

        Raises ``InvalidToken`` (see its reasons) for any token that must be refused; lets the
        key source's own errors (a lost database) through.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise InvalidToken("malformed")
        try:
            payload, now = await self._signed_payload(
                token, algorithms=_VERIFY_ALGORITHMS, require=REQUIRED_CLAIMS, issuer=self._issuer
            )
            return self._claims(payload, now)
        except jose.Rejected as rejected:
            raise InvalidToken(rejected.reason.value) from None

    async def _signed_payload(
        self,
        token: str,
        *,
        algorithms: frozenset[str],
        require: Sequence[str],
        issuer: str | None,
    ) -> tuple[dict[str, Any], datetime]:
        """The payload of ``token`` if the key its header names signed it with that key's own
        algorithm (one of ``algorithms``), with every claim of ``require``, naming ``issuer``
        (when given) and this verifier's audience; and the clock's time it was checked at.
        Times are the caller's to check (``jose.check_lifetime``). Raises ``InvalidToken`` or
        ``jose.Rejected``; every token check of this verifier and its subclasses goes here."""
        alg, kid = jose.unverified_header(token)
        if not isinstance(alg, str) or alg not in algorithms:
            raise InvalidToken("bad signature")  # "none", HS256 and friends: never ours
        if not isinstance(kid, str):
            raise InvalidToken("unknown key")
        now = self._clock.now()
        key = await self._key(kid, now)
        if alg != key.algorithm:
            raise InvalidToken("bad signature")
        payload = jose.decode(
            token, key.jwk, key.algorithm, require=require, issuer=issuer, audience=self._audience
        )
        return payload, now

    def _claims(self, payload: dict[str, Any], now: datetime) -> Claims:
        subject, session_id = payload["sub"], payload["sid"]
        if not (jose.is_text(subject) and jose.is_text(session_id)):
            raise InvalidToken("malformed")
        jose.check_lifetime(payload, now.timestamp(), self._leeway, exp_after_iat=True)
        return Claims(
            subject=subject,
            session_id=session_id,
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            issuer=payload["iss"],
            raw=MappingProxyType(payload),
        )

    async def _key(self, kid: str, now: datetime) -> VerificationKey:
        if self._loaded_at is None or (
            self._max_age is not None and not _within(self._loaded_at, now, self._max_age)
        ):
            await self._reload(now, self._loaded_at)
        key = self._keys.get(kid)
        loaded_at = self._loaded_at
        if key is None and (
            loaded_at is None or not _within(loaded_at, now, self._refresh_interval)
        ):
            await self._reload(now, loaded_at)
            key = self._keys.get(kid)
        if key is None or (key.valid_until is not None and now >= key.valid_until):
            raise InvalidToken("unknown key")
        return key

    async def _reload(self, now: datetime, seen: datetime | None) -> None:
        async with self._lock:
            # Another caller may have reloaded while this one waited: once is enough.
            if self._loaded_at is not None and self._loaded_at != seen:
                return
            self._keys = await self._source()
            self._loaded_at = now


class KeyRing:
    """The deployment's signing keys, kept in ``_jwks``; mints tokens and publishes JWKS."""

    def __init__(
        self,
        engine: Engine,
        secret: str,
        *,
        issuer: str,
        audience: str = "convex",
        token_ttl: timedelta = timedelta(minutes=15),
        rotate_after: timedelta = timedelta(days=30),
        keep_retired: timedelta = timedelta(days=1),
    ) -> None:
        if not secret:
            raise ValueError("KeyRing needs the server secret")
        # The client refreshes at exp - iat - 10 s; a shorter life would make it spin.
        if token_ttl <= timedelta(seconds=10) or token_ttl.microseconds:
            raise ValueError("token_ttl must be whole seconds, more than 10")
        if keep_retired < token_ttl:
            raise ValueError("keep_retired must be at least token_ttl, or tokens die early")
        if rotate_after <= timedelta(0):
            raise ValueError("rotate_after must be positive")
        self.issuer = issuer
        self.audience = audience
        self.token_ttl = token_ttl
        self.rotate_after = rotate_after
        self.keep_retired = keep_retired
        self._engine = engine
        self._cipher = _KeyCipher(secret)
        self._signer: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        self._verifier: JwtVerifier | None = None

    async def ensure_key(self) -> None:
        """Make sure a current key exists: create the first one, rotate one older than
        ``rotate_after``, delete retired keys past ``keep_retired``.

        Raises ``RuntimeError`` if the current key cannot be decrypted (the server secret is
        not the one it was stored with), and ``CONFLICT`` if the store kept
        conflicting.
        """
        await self._ensure()

    async def mint(
        self, *, subject: str, session_id: str, extra: Mapping[str, Any] | None = None
    ) -> str:
        """A token for ``subject`` (the user id) in session ``session_id``, signed with the
        current key. Every call gives a different string (a fresh ``jti``), as the Convex
        client requires of a forced refetch.

        Raises ``TypeError`` if ``extra`` names a claim the ring sets itself, and what
        ``ensure_key`` raises when the key has to be made or rotated first.
        """
        if extra is not None and _RESERVED_CLAIMS & extra.keys():
            raise TypeError(f"extra claims may not set {sorted(_RESERVED_CLAIMS & extra.keys())}")
        docs = await self._engine.system_read(_all_keys)
        current = _newest_active(docs)
        if current is None or self._due(current, self._now_ms()):
            await self._ensure()
            docs = await self._engine.system_read(_all_keys)
        kid, private_key = self._private_key(self._signing_key(docs, self._now_ms()))
        iat = int(self._engine.runtime.now().timestamp())
        claims = {
            **(extra or {}),
            "sub": subject,
            "sid": session_id,
            "iat": iat,
            "exp": iat + int(self.token_ttl.total_seconds()),
            "iss": self.issuer,
            "aud": self.audience,
            "jti": jose.b64url(self._engine.runtime.random.token_bytes(16)),
        }
        return pyjwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid})

    async def jwks(self) -> dict[str, Any]:
        """``{"keys": [...]}``: the public JWK of every key that still verifies, newest first."""
        docs = await self._engine.system_read(_all_keys)
        now_ms = self._now_ms()
        return {"keys": [dict(d["publicJwk"]) for d in docs if self._live(d, now_ms)]}

    def verifier(self) -> JwtVerifier:
        """The verifier for this ring's tokens (one per ring, sharing its key cache)."""
        if self._verifier is None:
            self._verifier = JwtVerifier(
                self._verification_keys,
                issuer=self.issuer,
                audience=self.audience,
                clock=self._engine.runtime.clock,
            )
        return self._verifier

    # ---- internals ----------------------------------------------------------------------

    def _now_ms(self) -> float:
        return to_ms(self._engine.runtime.now())

    def _due(self, doc: Document, now_ms: float) -> bool:
        created: float = doc["createdAt"]
        return now_ms - created >= _ms(self.rotate_after)

    def _live(self, doc: Document, now_ms: float) -> bool:
        retired = doc.get("retiredAt")
        return retired is None or now_ms < retired + _ms(self.keep_retired)

    def _signing_key(self, docs: list[Document], now_ms: float) -> Document:
        current = _newest_active(docs)
        if current is None:
            raise RuntimeError("no signing key: _jwks was emptied while minting")
        if now_ms - current["createdAt"] >= _ms(_PUBLISH_DELAY):
            return current
        # A key made moments ago may not be in other processes' verifier caches yet: sign
        # with the key it replaced for a little longer, if that one outlives the new token.
        for doc in docs:
            retired = doc.get("retiredAt")
            if retired is not None and retired + _ms(self.keep_retired) - now_ms >= _ms(
                self.token_ttl
            ):
                return doc
        return current

    async def _ensure(self) -> Document:
        async def body(db: SystemDatabase) -> tuple[Document, bool]:
            now_ms = to_ms(self._engine.runtime.now())
            docs = await db.query(TABLE).with_index("by_created").order("desc").collect()
            changed = False
            for doc in docs:
                if not self._live(doc, now_ms):
                    await db.delete(doc["_id"])
                    changed = True
            active = [d for d in docs if d.get("retiredAt") is None]
            current = active[0] if active else None
            if current is None or self._due(current, now_ms):
                fields = self._new_key(now_ms)
                current = {**fields, "_id": await db.insert(TABLE, fields)}
                changed = True
            # Normally at most one other key is active (the one just rotated out); retiring
            # every other one also mends a table written before keys were made this way.
            for doc in active:
                if doc["_id"] != current["_id"]:
                    await db.patch(doc["_id"], {"retiredAt": now_ms})
            return current, changed or len(active) > 1

        (current, changed), _ts = await self._engine.system_write(body, label="_auth:ensureKey")
        if changed and self._verifier is not None:
            self._verifier.invalidate()  # this process sees its own new key at once
        self._private_key(current)  # fail now, not at the first sign-in, on a wrong secret
        return current

    def _new_key(self, now_ms: float) -> dict[str, Any]:
        random = self._engine.runtime.random
        kid = jose.b64url(random.token_bytes(12))
        # cryptography draws the key from OpenSSL's CSPRNG; the runtime's source cannot feed
        # it. Everything else (kid, nonce) comes from the runtime.
        private_key = ec.generate_private_key(ec.SECP256R1())
        der = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        sealed = self._cipher.seal(kid, der, random.token_bytes(_NONCE_BYTES))
        return SigningKey(
            kid=kid,
            alg="ES256",
            publicJwk=_public_jwk(kid, private_key.public_key()),
            privateKey=sealed,
            createdAt=now_ms,
        ).model_dump()

    def _private_key(self, doc: Document) -> tuple[str, ec.EllipticCurvePrivateKey]:
        kid: str = doc["kid"]
        if self._signer is not None and self._signer[0] == kid:
            return self._signer
        der = self._cipher.open(kid, doc["privateKey"])
        key = serialization.load_der_private_key(der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise RuntimeError(f"signing key {kid} is not an EC key")
        self._signer = (kid, key)
        return self._signer

    async def _verification_keys(self) -> Mapping[str, VerificationKey]:
        docs = await self._engine.system_read(_all_keys)
        now_ms = self._now_ms()
        keep_ms = _ms(self.keep_retired)
        keys: dict[str, VerificationKey] = {}
        for doc in docs:
            if self._live(doc, now_ms):
                retired = doc.get("retiredAt")
                until = None if retired is None else from_ms(retired + keep_ms)
                keys[doc["kid"]] = VerificationKey.from_jwk(doc["publicJwk"], valid_until=until)
        return keys


class _KeyCipher:
    """AES-256-GCM under a key derived from the server secret; the kid is associated data."""

    def __init__(self, secret: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            secret.encode("utf-8")
        )
        self._aead = AESGCM(derived)

    def seal(self, kid: str, plaintext: bytes, nonce: bytes) -> str:
        ciphertext = self._aead.encrypt(nonce, plaintext, kid.encode("utf-8"))
        return base64.b64encode(nonce + ciphertext).decode("ascii")

    def open(self, kid: str, sealed: str) -> bytes:
        raw = base64.b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], kid.encode("utf-8"))
        except InvalidTag:
            raise RuntimeError(
                f"signing key {kid} cannot be decrypted: SECRET_KEY is not the one it was "
                "stored with"
            ) from None


async def _all_keys(db: SystemDatabase) -> list[Document]:
    return await db.query(TABLE).with_index("by_created").order("desc").collect()


def _newest_active(docs: list[Document]) -> Document | None:
    return next((d for d in docs if d.get("retiredAt") is None), None)


def _public_jwk(kid: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": jose.b64url(numbers.x.to_bytes(32, "big")),
        "y": jose.b64url(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000.0


def _within(since: datetime, now: datetime, span: timedelta) -> bool:
    # A clock that stepped backwards counts as "long ago": better one reload too many.
    return timedelta(0) <= now - since < span


__all__ = [
    "TABLES",
    "Claims",
    "InvalidToken",
    "JwtVerifier",
    "KeyRing",
    "KeySource",
    "SigningKey",
    "VerificationKey",
]
