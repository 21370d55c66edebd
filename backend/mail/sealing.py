"""Sealing the secret of a queued mail, so that the database never holds it readable.

A mail is queued inside the caller's transaction, so whatever it carries is written to the
``_outbox`` document and, for ever, to the append-only log. A sign-in link or a code stored
there would let anyone with a copy of the database (a backup, a replica, a stolen disk) sign in.
So the secret part of a mail is kept only sealed: AES-256-GCM under a key derived from the
server's ``SECRET_KEY`` (HKDF-SHA256, its own ``info`` so that no other use of the secret
shares the key), with a fresh 96-bit nonce from the engine's random source per seal, and the
mail it belongs to (recipient, subject and text templates) as associated data: a sealed secret
moved onto another mail, or altered, does not open.

Without ``SECRET_KEY`` a sealed secret is noise; with it, only the delivery opens it, at send
time, and the delivery then erases it from the live table (``outbox.deliver``).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.runtime import RandomSource
from backend.services import Services

if TYPE_CHECKING:
    from backend.engine import Engine

_VERSION = "v1."
_NONCE_BYTES = 12
_INFO = b"stepup/mail/outbox-secret/v1"


class SealBroken(ValueError):
    """A sealed secret that does not open: another ``SECRET_KEY``, or altered data."""


class SecretSeal:
    """Seals and opens mail secrets under one server secret."""

    def __init__(self, secret_key: str, *, info: bytes = _INFO) -> None:
        """``info`` names the use (HKDF's ``info``): each use of the seal gets its own key, so
        a secret sealed for one never opens as another's (step-up seals TOTP secrets under
        its own)."""
        if not secret_key:
            raise ValueError("a mail seal needs the server's SECRET_KEY")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            secret_key.encode("utf-8")
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretSeal(***)"

    def seal(self, secret: str, *, bound_to: str, random: RandomSource) -> str:
        """``secret`` sealed, as text: ``v1.`` and base64url of the nonce and ciphertext."""
        nonce = random.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), bound_to.encode("utf-8"))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def open(self, sealed: str, *, bound_to: str) -> str:
        """The secret back. Raises ``SealBroken`` when it was sealed under another key or for
        another mail, or was altered."""
        if not sealed.startswith(_VERSION):
            raise SealBroken("not a sealed mail secret")
        body = sealed[len(_VERSION) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise SealBroken("not a sealed mail secret") from None
        nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, ciphertext, bound_to.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise SealBroken("the mail secret does not open with this SECRET_KEY") from None
        return plain.decode("utf-8")


def install_seal(engine: Engine, secret_key: str) -> SecretSeal:
    """Give ``engine`` the seal for mail secrets, keyed by the server's ``SECRET_KEY``.
    Servers and the test harness call this where they set up the engine's other secrets."""
    return engine.services.register(SecretSeal, SecretSeal(secret_key))


def seal_of(services: Services) -> SecretSeal:
    """The engine's seal. Raises ``RuntimeError`` when none was installed: a mail with a
    secret is never stored in the clear instead."""
    seal = services.find(SecretSeal)
    if seal is None:
        raise RuntimeError(
            "this engine has no key for mail secrets: call backend.mail.install_seal("
            "engine, SECRET_KEY) when building it"
        )
    return seal
