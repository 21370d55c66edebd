"""No secret of a factor reaches a log: every record logged (at every level, by every logger,
the per-call line included) while an app is enrolled and used, backup codes are handed out and
spent, and a passkey is registered and used, is searched for each secret the flow handled."""

from __future__ import annotations

import logging

import pytest

from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD
from tests.backend.sensitive.factor_helpers import (
    enrol_totp,
    passkey_options,
    register_passkey,
    totp_now,
    verify_passkey,
    verify_totp,
)
from tests.support.authenticator import SoftAuthenticator

LOOK = "thing.look"


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_text:
            parts.append(record.exc_text)
    return "\n".join(parts)


async def test_no_totp_secret_code_backup_code_or_challenge_is_logged(
    basic_t: TestBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice: UserHandle = await basic_t.sign_up("alice@example.com", PASSWORD)
    secret, backup_codes = await enrol_totp(basic_t, alice)
    code = totp_now(basic_t, secret)
    assert (await verify_totp(basic_t, alice, LOOK, code, "x"))["ok"] is True
    spent = await alice.mutation(
        "sensitive:verifyBackupCode", {"action": LOOK, "resource": "y", "code": backup_codes[0]}
    )
    assert spent["ok"] is True
    key = SoftAuthenticator()
    await register_passkey(alice, key)
    options = await passkey_options(alice, LOOK, "z")
    challenge = options["options"]["challenge"]
    assert (await verify_passkey(alice, LOOK, key.get(options["options"]), "z"))["ok"] is True

    assert caplog.records, "the flow logged nothing at all: the search below would prove nothing"
    text = logged_text(caplog)
    for name, value in [
        ("the app's secret", secret),
        ("an app code", code),
        ("the passkey challenge", challenge),
        *((f"backup code {i}", c) for i, c in enumerate(backup_codes)),
    ]:
        assert value not in text, f"{name} was logged"
