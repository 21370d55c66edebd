"""Device cookies: how the server recognises a client that has signed in before.

At every successful sign-in the answer sets a long-lived cookie naming a random device id,
signed with the server secret (HttpOnly, SameSite=Lax, scoped to ``/api/auth``), and the
server remembers that this device signed in to this user (only a keyed hash of the id is
stored). Later sign-ins presenting the cookie come from a *known device* of that user: its
password failures are counted on its own record, and other clients' failures never lock it
(``lockout.py``); its magic-link requests are not held back by the ceiling that protects the
user's inbox from everyone else. This is OWASP's "device cookies" defence against lockout by
others.

One browser may sign in to several accounts: its id is the same for each, and each account
remembers it separately. The first proof of an address forgets every device of the account
(``proof.py``): a browser that signed in before the owner took the account over is a stranger.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from backend.auth.jose import b64url
from backend.auth.tables import DEVICES
from backend.runtime import Runtime
from backend.transactions.transaction import SystemDatabase

DEVICE_TTL = timedelta(days=365)
COOKIE_PATH = "/api/auth"
_ID_BYTES = 32
_MAX_COOKIE = 200

Document = dict[str, Any]


@dataclass(frozen=True)
class Device:
    """A device as this request knows it: the cookie value to (re)set, and the keyed hash of
    its id that the server stores."""

    cookie: str
    hash: str


class DeviceCookies:
    """Mints and reads signed device cookies."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def _mac(self, purpose: str, value: str) -> str:
        message = f"{purpose}\x1f{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def mint(self, runtime: Runtime) -> Device:
        device_id = b64url(runtime.random.token_bytes(_ID_BYTES))
        return self._device(device_id)

    def _device(self, device_id: str) -> Device:
        signature = self._mac("device-cookie", device_id)[:32]
        return Device(f"{device_id}.{signature}", self._mac("device-id", device_id)[:40])

    def read(self, cookie: Any) -> Device | None:
        """The device a cookie names, or None for a missing, malformed or forged one."""
        if not isinstance(cookie, str) or not cookie or len(cookie) > _MAX_COOKIE:
            return None
        device_id, _, signature = cookie.partition(".")
        if not device_id or not signature:
            return None
        expected = self._mac("device-cookie", device_id)[:32]
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return None
        return self._device(device_id)


async def _record(db: SystemDatabase, user_id: str, device_hash: str) -> Document | None:
    return await (
        db.query(DEVICES).with_index("by_user", userId=user_id, deviceHash=device_hash).first()
    )


async def is_known(db: SystemDatabase, user_id: str, device: Device | str | None) -> bool:
    """Whether ``device`` (or the device of this hash) signed in to ``user_id`` within
    ``DEVICE_TTL``."""
    if device is None:
        return False
    found = await _record(db, user_id, device if isinstance(device, str) else device.hash)
    return found is not None and db.now_ms - found["lastSignInAt"] < (
        DEVICE_TTL.total_seconds() * 1000
    )


async def remember(db: SystemDatabase, user_id: str, device: Device) -> None:
    """``device`` has just signed in to ``user_id``."""
    found = await _record(db, user_id, device.hash)
    if found is None:
        await db.insert(
            DEVICES,
            {
                "userId": user_id,
                "deviceHash": device.hash,
                "lastSignInAt": db.now_ms,
                "createdAt": db.now_ms,
            },
        )
    else:
        await db.patch(found["_id"], {"lastSignInAt": db.now_ms})


async def forget_all(db: SystemDatabase, user_id: str) -> list[str]:
    """Forget every device of ``user_id``; returns the hashes forgotten."""
    forgotten = []
    for found in await db.query(DEVICES).with_index("by_user", userId=user_id).collect():
        forgotten.append(str(found["deviceHash"]))
        await db.delete(found["_id"])
    return forgotten


__all__ = ["COOKIE_PATH", "DEVICE_TTL", "Device", "DeviceCookies", "forget_all", "is_known"]
