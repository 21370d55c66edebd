"""Password hashing (argon2id) and the rules a new password must pass.

Hashing is deliberately slow (tens of milliseconds and 19 MiB of memory per call), so it never
runs on the event loop: ``hash`` and ``verify`` hand the work to a worker thread and the loop
keeps serving other sockets meanwhile.

Sign-in must not tell an unknown email from a wrong password, not even by its timing. So
``verify(None, password)`` (no such user, or a user without a password) still runs one full
argon2 verification, against a dummy hash made with the same parameters, and answers False.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import TypeVar

from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from backend.errors import ConvexError, ErrorCode, invalid_argument
from backend.runtime import RandomSource, SystemRandom

T = TypeVar("T")


def _lower_priority() -> None:
    # Linux schedules threads individually: a nice value on this thread alone.
    with contextlib.suppress(AttributeError, OSError):  # unsupported: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
OWASP_MEMORY_COST_KIB = 19_456
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1

MIN_LENGTH = 8
MAX_LENGTH = 128
# Emails whose local part is shorter than this ("a@b.org") would forbid too many passwords.
_MIN_LOCAL_PART = 3


class Passwords:
    """Hashes and checks passwords with argon2id, off the event loop.

    The defaults are OWASP's parameters; pass cheaper ones only in tests. ``random`` supplies
    the salts (the runtime's random source; the OS's CSPRNG by default).
    """

    def __init__(
        self,
        *,
        time_cost: int = OWASP_TIME_COST,
        memory_cost: int = OWASP_MEMORY_COST_KIB,
        parallelism: int = OWASP_PARALLELISM,
        hash_len: int = 32,
        salt_len: int = 16,
        random: RandomSource | None = None,
        workers: int | None = None,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=hash_len,
            salt_len=salt_len,
            type=Type.ID,
        )
        self._random = random or SystemRandom()
        self._dummy: str | None = None
        # argon2 is CPU-bound: at most (cores - 1) run at once, on threads of lower scheduling
        # priority, so a burst of sign-ins queues here instead of slowing the event loop and
        # the database threads that serve everyone else (BENCHMARKS.md, "Auth").
        self._workers = max(1, (os.cpu_count() or 2) - 1) if workers is None else workers
        self._executor: ThreadPoolExecutor | None = None

    @property
    def parameters(self) -> Parameters:
        """The argon2 parameters new hashes are made with."""
        return Parameters(
            type=self._hasher.type,
            version=19,
            salt_len=self._hasher.salt_len,
            hash_len=self._hasher.hash_len,
            time_cost=self._hasher.time_cost,
            memory_cost=self._hasher.memory_cost,
            parallelism=self._hasher.parallelism,
        )

    async def hash(self, password: str) -> str:
        """The encoded argon2id hash of ``password`` (PHC string format, salt included).

        Raises ``argon2.exceptions.HashingError`` only if argon2 itself fails (out of memory).
        """
        salt = self._random.token_bytes(self._hasher.salt_len)
        return await self._off_loop(lambda: self._hasher.hash(password, salt=salt))

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """Check ``password`` against the ``stored`` hash: ``(ok, new_hash)``.

        ``new_hash`` is a fresh hash of the password when it was right but ``stored`` was made
        with other parameters (store it in place of the old one); otherwise None. ``stored``
        None costs the same work as a real check and answers ``(False, None)``. A wrong
        password or a malformed stored hash is ``(False, None)``: this never raises for them.
        """
        if stored is None:
            dummy = await self._dummy_hash()
            await self._off_loop(lambda: self._matches(dummy, password))
            return False, None
        if not await self._off_loop(lambda: self._matches(stored, password)):
            return False, None
        if self._hasher.check_needs_rehash(stored):
            return True, await self.hash(password)
        return True, None

    async def _off_loop(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._workers, thread_name_prefix="argon2", initializer=_lower_priority
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError, ValueError):
            # VerifyMismatchError is a VerificationError; a stored value that is not an argon2
            # hash at all (or not ASCII) is InvalidHashError / ValueError: all mean "no".
            return False

    async def _dummy_hash(self) -> str:
        # Made on first need rather than at construction, so that building a Passwords (at
        # import or startup) costs nothing. Two concurrent first calls may both compute one;
        # both results are equally good, so no lock is needed.
        if self._dummy is None:
            self._dummy = await self.hash("not a password: timing equaliser")
        return self._dummy


# The most common passwords of 8+ characters (shorter ones already fail the length rule),
# compared case-insensitively. A short list on purpose: it stops the worst choices without
# shipping a breach corpus.
_COMMON = frozenset(
    {
        "password",
        "password1",
        "password12",
        "password123",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "12345678",
        "123456789",
        "1234567890",
        "87654321",
        "qwertyuiop",
        "qwerty123",
        "qwerty12",
        "1q2w3e4r",
        "1qaz2wsx",
        "zaq12wsx",
        "qazwsxedc",
        "asdfghjkl",
        "iloveyou",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "superman",
        "starwars",
        "whatever",
        "trustno1",
        "welcome1",
        "welcome123",
        "letmein1",
        "changeme",
        "admin123",
        "abc12345",
    }
)


def check_password_rules(password: str, *, email: str | None = None) -> None:
    """Raise ``ConvexError`` unless ``password`` may be set as a new password.

    Codes: ``PASSWORD_TOO_SHORT`` (under ``MIN_LENGTH`` characters), ``PASSWORD_TOO_LONG``
    (over ``MAX_LENGTH``), ``PASSWORD_TOO_WEAK`` (one repeated character, a run such as
    "abcdefgh", one of the most common passwords, or containing the email's local part).
    ``INVALID_ARGUMENT`` for text that cannot be encoded (lone surrogates). Messages never
    repeat the password.
    """
    if len(password) < MIN_LENGTH:
        raise ConvexError(
            ErrorCode.PASSWORD_TOO_SHORT,
            f"Use at least {MIN_LENGTH} characters for your password.",
            minLength=MIN_LENGTH,
        )
    if len(password) > MAX_LENGTH:
        raise ConvexError(
            ErrorCode.PASSWORD_TOO_LONG,
            f"Use at most {MAX_LENGTH} characters for your password.",
            maxLength=MAX_LENGTH,
        )
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid_argument("The password contains invalid characters.", "password") from None
    folded = password.casefold()
    if len(set(folded)) == 1 or _is_run(folded):
        raise _weak("Your password is a single repeated character or a simple sequence.")
    if folded in _COMMON:
        raise _weak("That is one of the most common passwords; choose another one.")
    if email is not None:
        local = email.partition("@")[0].casefold()
        if len(local) >= _MIN_LOCAL_PART and local in folded:
            raise _weak("Your password must not contain your email address.")


def _is_run(text: str) -> bool:
    """True for "abcdefgh", "98765432": each character one code point from the previous."""
    steps = {ord(b) - ord(a) for a, b in pairwise(text)}
    return steps in ({1}, {-1})


def _weak(message: str) -> ConvexError:
    return ConvexError(ErrorCode.PASSWORD_TOO_WEAK, message)


__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "Passwords",
    "check_password_rules",
]
