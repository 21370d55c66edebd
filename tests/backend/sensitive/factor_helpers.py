"""Enrolling factors in tests, through the engine's own functions (no shortcuts)."""

from __future__ import annotations

from typing import Any

import pyotp

from backend.testing import TestBackend, UserHandle
from tests.backend.sensitive.conftest import PASSWORD


def totp_now(t: TestBackend, secret: str, *, steps: int = 0) -> str:
    """The code an authenticator app shows at the engine's time, ``steps`` steps away."""
    when = t.clock.now().timestamp() + 30 * steps
    return pyotp.TOTP(secret).at(when)


async def verify_with_password(user: UserHandle, action: str, resource: str | None = None) -> None:
    answer = await user.mutation(
        "sensitive:verifyPassword",
        {"action": action, "password": PASSWORD, **({"resource": resource} if resource else {})},
    )
    assert answer["ok"] is True, answer


async def enrol_totp(t: TestBackend, user: UserHandle) -> tuple[str, list[str]]:
    """Set up an authenticator app for ``user`` (proving the change with the password):
    its secret and the backup codes handed out."""
    await verify_with_password(user, "factor.totp.add")
    started = await user.mutation("sensitive:enrolTotp", {})
    assert started["ok"] is True
    secret = started["secret"]
    confirmed = await user.mutation("sensitive:confirmTotp", {"code": totp_now(t, secret)})
    assert confirmed["ok"] is True, confirmed
    t.clock.advance(seconds=30)  # the step used to confirm is spent
    return secret, confirmed["backupCodes"] or []


async def verify_totp(
    t: TestBackend, user: UserHandle, action: str, code: str, resource: str | None = None
) -> dict[str, Any]:
    args: dict[str, Any] = {"action": action, "code": code}
    if resource is not None:
        args["resource"] = resource
    return dict(await user.mutation("sensitive:verifyTotp", args))


async def register_passkey(
    user: UserHandle, authenticator: Any, name: str = "Laptop", *, verify: bool = True
) -> dict[str, Any]:
    """Register ``authenticator``'s credential for ``user`` (the change proven by password)."""
    if verify:
        await verify_with_password(user, "factor.passkey.add")
    options = await user.mutation("sensitive:passkeyRegistrationOptions", {})
    assert options["ok"] is True, options
    answer = await user.mutation(
        "sensitive:registerPasskey",
        {"credential": authenticator.create(options["options"]), "name": name},
    )
    assert answer["ok"] is True, answer
    return dict(answer)


async def passkey_options(
    user: UserHandle, action: str, resource: str | None = None
) -> dict[str, Any]:
    args: dict[str, Any] = {"action": action}
    if resource is not None:
        args["resource"] = resource
    return dict(await user.mutation("sensitive:passkeyOptions", args))


async def verify_passkey(
    user: UserHandle, action: str, credential: dict[str, Any], resource: str | None = None
) -> dict[str, Any]:
    args: dict[str, Any] = {"action": action, "credential": credential}
    if resource is not None:
        args["resource"] = resource
    return dict(await user.mutation("sensitive:verifyPasskey", args))
