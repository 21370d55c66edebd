"""Password hashing: argon2id with OWASP's parameters, off the event loop, equal work for
unknown users; and the rules a new password must pass."""

from __future__ import annotations

import asyncio
import threading

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from backend.auth.passwords import MAX_LENGTH, MIN_LENGTH, Passwords, check_password_rules
from backend.errors import ConvexError

PASSWORD = "correct horse battery"


def cheap() -> Passwords:
    """Argon2's minimum cost: for the tests that are not about the parameters."""
    return Passwords(time_cost=1, memory_cost=8, parallelism=1)


async def test_a_hash_verifies_its_own_password() -> None:
    passwords = cheap()
    stored = await passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert await passwords.verify(stored, PASSWORD) == (True, None)


async def test_two_hashes_of_one_password_differ_by_their_salt() -> None:
    passwords = cheap()
    assert await passwords.hash(PASSWORD) != await passwords.hash(PASSWORD)


async def test_a_wrong_password_is_false_and_not_an_error() -> None:
    passwords = cheap()
    stored = await passwords.hash(PASSWORD)
    assert await passwords.verify(stored, "correct horse battery!") == (False, None)
    assert await passwords.verify(stored, "") == (False, None)


@pytest.mark.parametrize("stored", ["", "plain text", "$argon2id$v=19$garbage", "$argon2id\u00e9"])
async def test_a_malformed_stored_hash_counts_as_wrong(stored: str) -> None:
    assert await cheap().verify(stored, PASSWORD) == (False, None)


async def test_the_default_parameters_are_owasps() -> None:
    parameters = extract_parameters(await Passwords().hash(PASSWORD))
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert parameters == Passwords().parameters


async def test_no_stored_hash_still_runs_one_real_verification_off_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passwords = cheap()
    real_verify = PasswordHasher.verify
    seen: list[tuple[str, int]] = []

    def spy(hasher: PasswordHasher, stored: str, password: str) -> bool:
        seen.append((stored, threading.get_ident()))
        return real_verify(hasher, stored, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    assert await passwords.verify(None, PASSWORD) == (False, None)
    assert await passwords.verify(None, "another password") == (False, None)

    (dummy, thread), (again, _) = seen
    assert extract_parameters(dummy) == passwords.parameters  # the same work as a real check
    assert again == dummy  # made once, then reused
    assert thread != threading.get_ident()  # in a worker thread, not on the event loop


async def test_a_hash_with_outdated_parameters_is_rehashed_on_a_right_password() -> None:
    old = await cheap().hash(PASSWORD)
    current = Passwords()

    ok, new_hash = await current.verify(old, PASSWORD)

    assert ok
    assert new_hash is not None
    assert extract_parameters(new_hash) == current.parameters
    assert await current.verify(new_hash, PASSWORD) == (True, None)
    assert await current.verify(old, "wrong password here") == (False, None)


async def _run_while_ticking(
    gate: threading.Event, work: asyncio.Future[object] | asyncio.Task[object]
) -> int:
    """Tick a 1 ms sleep loop until ``work`` is done; open ``gate`` after a few ticks."""
    ticks = 0
    while not work.done():
        await asyncio.sleep(0.001)
        ticks += 1
        if ticks >= 5:
            gate.set()
    await work
    return ticks


def _gate(gate: threading.Event) -> None:
    # Holds argon2 back until the loop has ticked. Were argon2 run on the loop itself, the
    # ticker could never run, this wait would time out, and the call would fail.
    assert gate.wait(timeout=5), "the event loop did not run while argon2 was working"


async def test_hashing_and_verifying_leave_the_event_loop_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passwords = Passwords()  # the real, slow parameters
    real_hash, real_verify = PasswordHasher.hash, PasswordHasher.verify
    gate = threading.Event()

    def gated_hash(hasher: PasswordHasher, password: str, *, salt: bytes | None = None) -> str:
        _gate(gate)
        return real_hash(hasher, password, salt=salt)

    def gated_verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
        _gate(gate)
        return real_verify(hasher, stored, password)

    monkeypatch.setattr(PasswordHasher, "hash", gated_hash)
    monkeypatch.setattr(PasswordHasher, "verify", gated_verify)

    hashing: asyncio.Task[object] = asyncio.create_task(passwords.hash(PASSWORD))
    assert await _run_while_ticking(gate, hashing) >= 5
    stored = hashing.result()
    assert isinstance(stored, str)

    gate.clear()
    verifying: asyncio.Task[object] = asyncio.create_task(passwords.verify(stored, PASSWORD))
    assert await _run_while_ticking(gate, verifying) >= 5
    assert verifying.result() == (True, None)


# ---- rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "email", "code"),
    [
        ("short1!", None, "PASSWORD_TOO_SHORT"),
        ("", None, "PASSWORD_TOO_SHORT"),
        ("x1" * 64 + "y", None, "PASSWORD_TOO_LONG"),
        ("aaaaaaaaaaaa", None, "PASSWORD_TOO_WEAK"),
        ("abcdefghij", None, "PASSWORD_TOO_WEAK"),
        ("98765432", None, "PASSWORD_TOO_WEAK"),
        ("Password123", None, "PASSWORD_TOO_WEAK"),
        ("qwertyuiop", None, "PASSWORD_TOO_WEAK"),
        ("alice.smith", "Alice.Smith@example.com", "PASSWORD_TOO_WEAK"),
        ("my-alice-2024!", "alice@example.com", "PASSWORD_TOO_WEAK"),
        ("\ud800 lone surrogate", None, "INVALID_ARGUMENT"),
    ],
)
def test_a_password_that_breaks_a_rule_is_refused_with_its_code(
    password: str, email: str | None, code: str
) -> None:
    with pytest.raises(ConvexError) as caught:
        check_password_rules(password, email=email)
    assert caught.value.code == code
    assert caught.value.message
    if password:
        assert password not in repr(caught.value.data)  # never echoed back


@pytest.mark.parametrize(
    ("password", "email"),
    [
        (PASSWORD, None),
        (PASSWORD, "alice@example.com"),
        ("x" * (MIN_LENGTH - 1) + "y", None),
        ("xy" * (MAX_LENGTH // 2), None),
        ("al-is-my-friend", "al@example.com"),  # a local part this short forbids nothing
        ("s3cure enough", "bob@example.com"),
    ],
)
def test_a_reasonable_password_passes(password: str, email: str | None) -> None:
    check_password_rules(password, email=email)


def test_the_length_limits_are_the_documented_ones() -> None:
    assert (MIN_LENGTH, MAX_LENGTH) == (8, 128)
    with pytest.raises(ConvexError) as caught:
        check_password_rules("x1" * 64 + "z")
    assert caught.value.data["maxLength"] == MAX_LENGTH
