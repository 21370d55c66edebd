"""A software WebAuthn authenticator: a real P-256 key, real authenticator data, real
signatures over ``authenticatorData || SHA-256(clientDataJSON)``, as a browser and a security
key would produce them. The server's verifier (py_webauthn) is not mocked: it checks these
bytes exactly as it checks a phone's.

Every knob a test needs to forge an answer is a keyword: another origin or relying party, no
user verification, a sign counter of its choosing, a tampered signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP = 0x01
UV = 0x04
AT = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class SoftAuthenticator:
    """One credential on one authenticator."""

    def __init__(self, *, rp_id: str = "testserver", origin: str = "http://testserver") -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode("utf-8")

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, uv: bool = True
    ) -> dict[str, Any]:
        """The answer of ``navigator.credentials.create(options)``, as JSON."""
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        flags = UP | AT | (UV if uv else 0)
        rp_hash = hashlib.sha256(options["rp"]["id"].encode("utf-8")).digest()
        attested = (
            bytes(16)  # AAGUID
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_key()
        )
        auth_data = rp_hash + bytes([flags]) + self.sign_count.to_bytes(4, "big") + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool = True,
        counter: int | None = None,
        tamper: bool = False,
    ) -> dict[str, Any]:
        """The answer of ``navigator.credentials.get(options)``, as JSON. The counter moves
        on by one unless ``counter`` says what to report."""
        if counter is None:
            self.sign_count += 1
            counter = self.sign_count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        rp_hash = hashlib.sha256((rp_id or options.get("rpId") or self.rp_id).encode()).digest()
        auth_data = rp_hash + bytes([UP | (UV if uv else 0)]) + counter.to_bytes(4, "big")
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        if tamper:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }


__all__ = ["SoftAuthenticator", "b64url"]
