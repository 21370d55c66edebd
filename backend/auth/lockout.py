"""Wrong passwords: one failure record per account and one per client, with delays that grow.

Every password check goes through here: signing in by email and password, and the step-up
check ``sensitive:verifyPassword``. Both share the account's record, so a guess spent on one
is a guess spent on the other, and a client locked out of one is locked out of the other.

Who is counted. A check is made by a *client*: either a device the account knows (its signed
device cookie names a device that has signed in to this account before, ``devices.py``; a
step-up check is made by the device its session was signed in on) or an unknown client (every
other caller, counted by address in the sign-in rate limits). Each failure counts on the
account's record, and a known device's failures also on the device's own record.

What is locked. Unknown clients are refused while the account's record is locked; a known
device only while its own record is. So an attacker, who is an unknown client, can lock other
unknown clients out of the owner's account but never the owner's known devices: others'
failures do not lock a client that has signed in before (OWASP's "device cookies").

What is forgiven. A right password from an unknown client clears the account's record; from a
known device it clears the device's record and the account's consecutive count, but not the
lock that strangers earned, so the owner signing in hands an attacker no fresh guesses.

How the delays grow (OWASP: lock after about ten consecutive failures, for longer and longer,
up to about an hour). The first ``FREE_FAILURES`` failures cost nothing; the tenth locks for a
minute, and every further one doubles the lock, up to ``MAX_DELAY``. An attacker who keeps
going makes about 24 guesses a day.

The stronger remedy (NIST SP 800-63B-4: at most 100 consecutive failed attempts on an
account). After ``HARD_STOP`` failures counted on the account, password checks from unknown
clients stop altogether; after ``HARD_STOP`` consecutive failures with no success in between
(the NIST count, which any successful check resets), they stop for every client. In either
case only a proof of the address lifts the stop: signing in with a magic link, a verification
link or an OAuth provider that vouches for the address (``clear``). The password itself stays
as it was; the owner is never without a way in, because a link by mail always works.

Races. An attempt is counted as a failure *before* argon2 runs (``admit``), in a transaction
of its own, and forgiven after if the password was right (``settle``): twenty parallel
guesses are twenty counted failures, and the lock engages in the middle of the burst rather
than after it. A record goes quiet and is forgotten a day after its last failure, unless it
has reached the hard stop.

Records are keyed by a keyed hash of the normalised address (not the user id), so an unknown
address is counted and locked exactly like a known one: a lock reveals nothing about whether
an account exists.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from backend.auth.tables import PASSWORD_FAILURES
from backend.errors import ErrorCode
from backend.transactions.transaction import SystemDatabase

FREE_FAILURES = 10
FIRST_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=1)
HARD_STOP = 100
FORGET_AFTER = timedelta(days=1)

Document = dict[str, Any]


class RefusalCode(StrEnum):
    """Why a check was refused, by its code in the error table (``backend/errors.py``)."""

    RATE_LIMITED = ErrorCode.RATE_LIMITED.value  # locked for a while: see ``retry_after_ms``
    PASSWORD_LOCKED = ErrorCode.PASSWORD_LOCKED.value  # the hard stop: prove the address


@dataclass(frozen=True)
class Refusal:
    """Why a password check was not made (the password was not looked at)."""

    code: RefusalCode
    retry_after_ms: int | None = None


# ---- the pure core: a record in, a verdict or a new record out ------------------------------


def lock_for(failures: int) -> timedelta | None:
    """How long the ``failures``-th failure locks for: nothing below ``FREE_FAILURES``, then
    ``FIRST_DELAY`` doubling per failure, at most ``MAX_DELAY``."""
    if failures < FREE_FAILURES:
        return None
    doublings = min(failures - FREE_FAILURES, 32)  # 2**32 minutes is far past the cap
    step: timedelta = FIRST_DELAY * (2**doublings)
    return min(step, MAX_DELAY)


@dataclass(frozen=True)
class Failures:
    """One record: ``failures`` since the record was last cleared, ``consecutive`` since the
    last successful check of any client, and the lock they earned."""

    failures: int = 0
    consecutive: int = 0
    locked_until: float | None = None
    last_failure_at: float | None = None

    @classmethod
    def of(cls, document: Document | None) -> Failures:
        if document is None:
            return cls()
        return cls(
            failures=int(document["failures"]),
            consecutive=int(document["consecutive"]),
            locked_until=document.get("lockedUntil"),
            last_failure_at=document.get("lastFailureAt"),
        )

    @property
    def stopped(self) -> bool:
        """At the hard stop for every client (NIST's consecutive count)."""
        return self.consecutive >= HARD_STOP

    @property
    def stopped_for_unknown(self) -> bool:
        return self.failures >= HARD_STOP or self.stopped

    def current(self, now_ms: float) -> Failures:
        """This record as of ``now_ms``: a quiet one (a day without failures) is forgotten,
        unless it has reached the hard stop, which only a proof of the address lifts."""
        quiet = (
            self.last_failure_at is None
            or now_ms - self.last_failure_at >= FORGET_AFTER.total_seconds() * 1000
        )
        if quiet and not self.stopped_for_unknown:
            return Failures()
        return self

    def wait_ms(self, now_ms: float) -> int | None:
        if self.locked_until is None or self.locked_until <= now_ms:
            return None
        return max(1, int(self.locked_until - now_ms + 0.999))

    def failed(self, now_ms: float) -> Failures:
        """One more failure, and the lock it earns (never shorter than one already running)."""
        failures = self.failures + 1
        step = lock_for(failures)
        locked = self.locked_until
        if step is not None:
            locked = max(locked or 0.0, now_ms + step.total_seconds() * 1000)
        return Failures(failures, self.consecutive + 1, locked, now_ms)

    def fields(self) -> Document:
        return {
            "failures": self.failures,
            "consecutive": self.consecutive,
            "lockedUntil": self.locked_until,
            "lastFailureAt": self.last_failure_at or 0.0,
        }


def refusal_for(account: Failures, device: Failures | None, now_ms: float) -> Refusal | None:
    """Whether a check may be made now: ``device`` is the known device's record, or None for
    an unknown client."""
    if account.stopped or (device is None and account.stopped_for_unknown):
        return Refusal(RefusalCode.PASSWORD_LOCKED)
    wait = (account if device is None else device).wait_ms(now_ms)
    return None if wait is None else Refusal(RefusalCode.RATE_LIMITED, wait)


# ---- the transactional edge -----------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One password check in flight: the account's record, and the known device's (None for
    an unknown client)."""

    account_key: str
    device_key: str | None = None


class Lockout:
    """Failure records, keyed by hashes made with the server secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def _hash(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def account_key(self, email: str) -> str:
        """The record of the account behind a normalised address (known or not)."""
        return "account:" + self._hash("password-failures", email)

    def device_key(self, user_id: str, device_hash: str) -> str:
        """The record of one known device of one user."""
        return "device:" + self._hash("password-failures", user_id, device_hash)

    def attempt(self, email: str, known_device: tuple[str, str] | None) -> Attempt:
        """An attempt on ``email``'s account by a known ``(user id, device hash)``, or by an
        unknown client."""
        device = self.device_key(*known_device) if known_device is not None else None
        return Attempt(self.account_key(email), device)

    async def check(self, db: SystemDatabase, attempt: Attempt) -> Refusal | None:
        """What ``admit`` would refuse now, counting nothing."""
        now = db.now_ms
        account = Failures.of(await _find(db, attempt.account_key)).current(now)
        if attempt.device_key is None:
            return refusal_for(account, None, now)
        device = Failures.of(await _find(db, attempt.device_key)).current(now)
        return refusal_for(account, device, now)

    async def admit(self, db: SystemDatabase, attempt: Attempt) -> Refusal | None:
        """Refuse the attempt while its client is locked out; otherwise count it as a failure
        now (``settle`` forgives it if the password was right) and let it through."""
        now = db.now_ms
        account_doc = await _find(db, attempt.account_key)
        account = Failures.of(account_doc).current(now)
        device_doc = await _find(db, attempt.device_key) if attempt.device_key else None
        device = Failures.of(device_doc).current(now) if attempt.device_key else None
        refused = refusal_for(account, device, now)
        if refused is not None:
            return refused
        if attempt.device_key is not None and device is not None:
            await _store(db, attempt.device_key, device_doc, device.failed(now))
        else:
            await _store(db, attempt.account_key, account_doc, account.failed(now))
        return None

    async def settle(self, db: SystemDatabase, attempt: Attempt, *, ok: bool) -> None:
        """Record the outcome of an admitted attempt. A right password clears the client's
        record and the account's consecutive count; a known device's wrong one counts on the
        account too (an unknown client's was counted on admission)."""
        now = db.now_ms
        account_doc = await _find(db, attempt.account_key)
        account = Failures.of(account_doc).current(now)
        if attempt.device_key is None:
            if ok and account_doc is not None:
                await db.delete(account_doc["_id"])
            return
        if ok:
            device_doc = await _find(db, attempt.device_key)
            if device_doc is not None:
                await db.delete(device_doc["_id"])
            if account_doc is not None and account.consecutive:
                await _store(db, attempt.account_key, account_doc, replace(account, consecutive=0))
            return
        await _store(db, attempt.account_key, account_doc, account.failed(now))

    async def stopped(self, db: SystemDatabase, email: str, known_device: bool) -> bool:
        """Whether the hard stop keeps this client from checking the password at all."""
        account = Failures.of(await _find(db, self.account_key(email))).current(db.now_ms)
        return account.stopped or (not known_device and account.stopped_for_unknown)

    async def clear(self, db: SystemDatabase, email: str, device_keys: Sequence[str] = ()) -> None:
        """The address was proven: forget the account's failures (and those devices')."""
        for key in [self.account_key(email), *device_keys]:
            found = await _find(db, key)
            if found is not None:
                await db.delete(found["_id"])


async def _find(db: SystemDatabase, key: str | None) -> Document | None:
    if key is None:
        return None
    return await db.query(PASSWORD_FAILURES).with_index("by_key", key=key).first()


async def _store(db: SystemDatabase, key: str, existing: Document | None, record: Failures) -> None:
    fields = {"key": key, **record.fields()}
    if existing is None:
        await db.insert(PASSWORD_FAILURES, fields)
    else:
        await db.replace(existing["_id"], fields)


__all__ = [
    "FREE_FAILURES",
    "HARD_STOP",
    "MAX_DELAY",
    "Attempt",
    "Failures",
    "Lockout",
    "Refusal",
    "RefusalCode",
    "lock_for",
    "refusal_for",
]
