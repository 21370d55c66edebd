"""Which verification methods a caller is offered for one action, strongest first.

The methods themselves (``methods.py`` lists them) are handed to ``SensitiveService`` when the
engine is assembled, so the code that offers them (``require_sensitive_action``'s refusal,
``sensitive:status``, each method's check that it was offered) depends on no method module:
the methods' own enrolment functions are protected actions, and call that code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from backend.auth.sessions import SessionInfo
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService
from backend.udf.registry import RegisteredFunction
from backend.udf.system_context import SystemContext

EMAIL = "email"  # email_code.NAME: the method that stands in where an action demands more


class VerificationMethod(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def functions(self) -> Mapping[str, RegisteredFunction[Any, Any, Any]]: ...

    async def available(
        self, system: SystemContext, who: SessionInfo, spec: SensitiveAction, resource: str | None
    ) -> bool: ...


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
    methods = system.service(SensitiveService).methods
    have = [m.name for m in methods if await m.available(system, who, spec, resource)]
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


__all__ = ["EMAIL", "Offer", "VerificationMethod", "methods_for", "offer"]
