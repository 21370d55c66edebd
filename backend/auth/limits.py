"""What each client may spend on the auth endpoints: token buckets, keyed so that strangers
cannot spend the owner's budget.

Password sign-in: unknown clients are counted by address and by the address they try; a known
device (``devices.py``) by itself alone. Mail (magic links, verification links): what one
client asked for one inbox, what one client asked for in all, and a generous ceiling per inbox
that protects it from floods by everyone else together; the account's own known devices are
not held back by that ceiling, so nobody can keep the owner from getting their link.

Keys are keyed hashes (the table holds no emails or addresses). A request is spent from every
limit that applies, or, if any of them is spent out, from none.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from backend.auth import devices
from backend.auth.devices import Device
from backend.auth.tables import USERS
from backend.ratelimit.limiter import TokenBucket, spend_all
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import ClientInfo

RATE_LIMITS: dict[str, TokenBucket] = {
    "auth.signIn.email": TokenBucket(5, timedelta(minutes=1), capacity=10),
    "auth.signIn.ip": TokenBucket(30, timedelta(minutes=1), capacity=60),
    "auth.signIn.device": TokenBucket(30, timedelta(minutes=1), capacity=60),
    "auth.signUp.ip": TokenBucket(5, timedelta(minutes=10), capacity=10),
    # sign-up tells whether an email has an account: limited per email, whoever asks
    "auth.signUp.email": TokenBucket(3, timedelta(minutes=10), capacity=5),
    "auth.mail.client": TokenBucket(3, timedelta(minutes=10), capacity=5),
    "auth.mail.sender": TokenBucket(10, timedelta(minutes=10), capacity=20),
    "auth.mail.inbox": TokenBucket(10, timedelta(hours=1), capacity=20),
}

Limits = list[tuple[str, str | None]]  # (limit name, what it is keyed by; None: n/a)


class Budgets:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def key(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()[:32]

    async def spend(self, db: SystemDatabase, limits: Limits) -> int | None:
        """Spend one from each limit (those keyed by None do not apply), or, if any is spent
        out, nothing at all: then the longest wait, in milliseconds."""
        keyed = [(name, RATE_LIMITS[name], self.key(value)) for name, value in limits if value]
        return await spend_all(db, keyed)

    @staticmethod
    def sign_in(address: str | None, client: ClientInfo, known_device: Device | None) -> Limits:
        """The limits of one password sign-in attempt."""
        if known_device is not None:
            return [("auth.signIn.device", known_device.hash)]
        return [("auth.signIn.email", address), ("auth.signIn.ip", client.ip_address)]

    async def mail(
        self, db: SystemDatabase, address: str, client: ClientInfo, device: Device | None
    ) -> int | None:
        """Spend what one mail to ``address`` costs this client; the wait if it cannot."""
        who = f"device:{device.hash}" if device else f"ip:{client.ip_address or 'unknown'}"
        limits: Limits = [("auth.mail.client", f"{who}|{address}"), ("auth.mail.sender", who)]
        user = await db.query(USERS).with_index("by_email", email=address).first()
        if user is None or not await devices.is_known(db, user["_id"], device):
            limits.append(("auth.mail.inbox", address))
        return await self.spend(db, limits)


__all__ = ["RATE_LIMITS", "Budgets"]
