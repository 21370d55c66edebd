"""The verification methods, strongest first (which of them a caller is offered: ``offers.py``).

A method is a module of this folder that defines ``METHOD``: an object with

- ``name``: how ``methods`` lists it (``"passkey"``, ``"totp"``, ``"password"``,
  ``"backup_code"``, ``"email"``);
- ``functions``: its ``sensitive:*`` functions, by path (the engine registers them);
- ``available(system, who, spec, resource)``: whether this caller has it and may use it for
  this action now (a password needs one; a locked-out one is not offered; the passkey an
  action removes does not count).

Its functions check the method's own secret and, on success, mint a grant with the steps
every method shares (``attempts.py``): the argument check, the caller, the action's
permission rule, the rate limits, the audit trail, the grant.

To add a method, write its module beside ``password.py`` and ``email_code.py`` (its
functions, its rate limits, its tables in ``factors.py`` or its own, the pure rules of its
secret in a module of their own as ``codes.py`` and ``totp_codes.py`` have them) and put
its ``METHOD`` in ``METHODS`` below, in order of strength. ``sensitive:status``,
``require_sensitive_action``'s refusal and the client's dialog then offer it to every user
for whom ``available`` says yes.
"""

from __future__ import annotations

from typing import Any

from backend.sensitive import backup_codes, email_code, passkey, password, totp
from backend.sensitive.offers import VerificationMethod
from backend.udf.registry import RegisteredFunction

METHODS: tuple[VerificationMethod, ...] = (
    passkey.METHOD,
    totp.METHOD,
    password.METHOD,
    backup_codes.METHOD,
    email_code.METHOD,
)
"""Every method, strongest first: the order ``methods`` lists them in."""

EMAIL = email_code.NAME


def functions() -> dict[str, RegisteredFunction[Any, Any, Any]]:
    """Every method's functions, by path."""
    found: dict[str, RegisteredFunction[Any, Any, Any]] = {}
    for method in METHODS:
        for path, function in method.functions.items():
            if path in found:
                raise TypeError(f"{path} is defined by two verification methods")
            found[path] = function
    return found


__all__ = ["EMAIL", "METHODS", "functions"]
