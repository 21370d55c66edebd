"""The verification methods, strongest first, and which of them a caller is offered.

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from backend.auth.sessions import SessionInfo
from backend.sensitive import backup_codes, email_code, passkey, password, totp
from backend.sensitive.registry import SensitiveAction
from backend.udf.registry import RegisteredFunction
from backend.udf.system_context import SystemContext


class VerificationMethod(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def functions(self) -> Mapping[str, RegisteredFunction[Any, Any, Any]]: ...

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool: ...


METHODS: tuple[VerificationMethod, ...] = (
    passkey.METHOD,
    totp.METHOD,
    password.METHOD,
    backup_codes.METHOD,
    email_code.METHOD,
)
"""Every method, strongest first: the order ``methods`` lists them in."""

EMAIL = email_code.NAME


@dataclass(frozen=True)
class Offer:
    """The methods a caller is offered for one action, strongest first; ``fallback`` when
    the action demands methods this user has none of, and email stands in for them."""

    methods: list[str]
    fallback: bool = False

    def fields(self) -> dict[str, Any]:
        return {"methods": self.methods, **({"fallback": True} if self.fallback else {})}


async def offer(
    system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
) -> Offer:
    """What ``who`` may verify with for ``spec`` on ``resource``: every method they have that
    the action permits (``SensitiveAction.permits``); where it demands methods they have none
    of, email, saying so. Every method mints a grant, which satisfies every level."""
    have = [m.name for m in METHODS if await m.available(system, who, spec, resource)]
    permitted = [name for name in have if spec.permits(name)]
    if permitted:
        return Offer(permitted)
    resort = [name for name in have if name in spec.last_resort]
    if resort:  # an excluded method, the only one this user has (``changes.py``)
        return Offer(resort, fallback=True)
    if spec.methods is None:
        return Offer([])
    if EMAIL in have and EMAIL not in spec.excludes:
        return Offer([EMAIL], fallback=True)
    return Offer([])


async def methods_for(
    system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
) -> list[str]:
    """The names of the methods ``who`` is offered for ``spec`` on ``resource``."""
    return (await offer(system, who, spec, resource)).methods


def functions() -> dict[str, RegisteredFunction[Any, Any, Any]]:
    """Every method's functions, by path."""
    found: dict[str, RegisteredFunction[Any, Any, Any]] = {}
    for method in METHODS:
        for path, function in method.functions.items():
            if path in found:
                raise TypeError(f"{path} is defined by two verification methods")
            found[path] = function
    return found


__all__ = ["METHODS", "Offer", "VerificationMethod", "functions", "methods_for", "offer"]
