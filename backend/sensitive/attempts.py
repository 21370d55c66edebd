"""The steps every verification method takes around its own check, at the edges.

A method's mutation (``password.py``, ``email_code.py``) goes: ``check_target`` (the
arguments), ``begin`` (a live session, the action's own permission rule before anything
else, the method offered to this caller), ``spend`` (its rate limits, before the check they
guard; ``password.admit_guess`` spends them for a guess on the password's failure record),
its check, and ``grant`` on success. Each step writes its audit event (``trail`` says who,
from where, for what). A method answers ``refusal(code, ...)`` rather than raising, so that
the failed attempt (its count, its audit event, the budget it spent) commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.errors import ConvexError, ErrorCode
from backend.ratelimit.limiter import TokenBucket, spend_all
from backend.sensitive.grants import mint_grant
from backend.sensitive.offers import offer
from backend.sensitive.records import trail
from backend.sensitive.registry import SensitiveAction
from backend.sensitive.service import SensitiveService, caller
from backend.transactions.transaction import SystemDatabase
from backend.udf.system_context import SystemContext

Answer = dict[str, Any]


def check_target(action: Any, resource: Any) -> None:
    """``INVALID_ARGUMENT`` unless ``action`` is an action name and ``resource`` an id."""
    if not isinstance(action, str) or not action or len(action) > 128:
        raise ConvexError(
            ErrorCode.INVALID_ARGUMENT, "action must be an action name", path="action"
        )
    if resource is not None and (not isinstance(resource, str) or len(resource) > 256):
        raise ConvexError(ErrorCode.INVALID_ARGUMENT, "resource must be an id", path="resource")


def refusal(code: ErrorCode, **details: Any) -> Answer:
    """A verification function's answer to a failed attempt: ``{ok: false, code, ...}``."""
    return {"ok": False, "code": code.value, **details}


@dataclass(frozen=True)
class StepUp:
    """One step-up that ``begin`` let through: who makes it, for which action and resource,
    by which method, and the audit fields (``trail``) of every event it writes."""

    who: SessionInfo
    spec: SensitiveAction
    resource: str | None
    method: str
    fields: dict[str, Any]


async def authorize(
    system: SystemContext,
    who: SessionInfo,
    spec: SensitiveAction,
    resource: str | None,
    method: str,
    *,
    audited: bool = True,
) -> None:
    """Refuse, before anything else is done, a caller the action's own permission rule
    refuses (``SensitiveAction.authorize``), and any caller of an undeclared action:
    ``FORBIDDEN`` alike whatever the reason (a resource that does not exist or is not theirs),
    with nothing sent, described or minted. A refusal by a mutation is audited even though the
    call fails."""
    if await spec.allows(system.reader(), resource):
        return
    if audited:
        fields = trail(system, who, spec.name, resource, method)

        async def refused(durable: SystemDatabase) -> None:
            await audit.record(
                durable, audit.EventKind.VERIFICATION_FAILED, outcome="forbidden", **fields
            )

        system.durably(refused)
    raise ConvexError(
        ErrorCode.FORBIDDEN,
        "You may not verify for this action",
        action=spec.name,
        resource=resource,
    )


async def offered(
    system: SystemContext,
    who: SessionInfo,
    spec: SensitiveAction,
    resource: str | None,
    method: str,
    fields: dict[str, Any],
) -> Answer | None:
    """``METHOD_NOT_AVAILABLE`` (audited) unless ``method`` is one this caller is offered for
    this action (``offers.offer``: what they have, what the action permits), else None."""
    if method in (await offer(system, who, spec, resource)).methods:
        return None
    return await failed(
        system.db, refusal(ErrorCode.METHOD_NOT_AVAILABLE), "method not offered", fields
    )


async def begin(
    system: SystemContext,
    action: str,
    resource: str | None,
    method: str,
    *,
    limits: Mapping[str, TokenBucket] | None = None,
) -> StepUp | Answer:
    """The opening of every step-up function of ``method``, after ``check_target``: the
    declared action (an unknown one is a level-4 stand-in, ``SensitiveActions.get``), the
    caller (``caller`` raises ``UNAUTHENTICATED`` without a live session), the action's own
    permission rule (``authorize`` raises ``FORBIDDEN``, audited), whether ``method`` is
    offered to this caller for it (``offered``: ``METHOD_NOT_AVAILABLE``, audited), and, when
    ``limits`` are given, one attempt spent from them (``spend``: ``RATE_LIMITED``,
    audited). A refusal is the answer; otherwise the ``StepUp``. A method that keeps a lock of
    its own checks it before spending, and so passes no ``limits`` here."""
    spec = system.service(SensitiveService).registry.get(action)
    who = await caller(system)
    await authorize(system, who, spec, resource, method)
    fields = trail(system, who, spec.name, resource, method)
    refused = await offered(system, who, spec, resource, method, fields)
    if refused is None and limits is not None:
        refused = await spend(system, who, limits, fields)
    if refused is not None:
        return refused
    return StepUp(who, spec, resource, method, fields)


async def spend(
    system: SystemContext,
    who: SessionInfo,
    limits: Mapping[str, TokenBucket],
    fields: dict[str, Any],
) -> Answer | None:
    """Spend one attempt from each budget of ``limits`` (``*.ip`` ones per client address,
    the rest per user). If any refuses, none is spent, and the refusal is answered (and
    audited) as ``RATE_LIMITED`` with the longest wait."""
    service = system.service(SensitiveService)
    client = system.client
    address = client.ip_address if client else None
    keyed = [
        (
            name,
            config,
            service.limit_key(f"ip:{address}" if name.endswith(".ip") else f"user:{who.user_id}"),
        )
        for name, config in limits.items()
    ]
    wait = await spend_all(system.db, keyed)
    if wait is None:
        return None
    first = next(iter(limits))
    await audit.record(
        system.db, audit.EventKind.RATE_LIMITED, outcome="refused", detail=first, **fields
    )
    return refusal(ErrorCode.RATE_LIMITED, retryAfterMs=wait)


async def grant(db: SystemDatabase, step: StepUp, *, factor_id: str | None = None) -> Answer:
    """A passed check: mint the grant (replacing any earlier one for the same target) and
    audit both. ``{ok: true, expiresAt}``. ``factor_id`` names the passkey that proved it."""
    who, spec = step.who, step.spec
    minted = await mint_grant(
        db,
        user_id=who.user_id,
        session_id=who.session_id,
        action=spec.name,
        resource=step.resource,
        level=spec.level,
        method=step.method,
        lifetime_ms=spec.grant_lifetime.total_seconds() * 1000,
        factor_id=factor_id,
        # offered although excluded: only as the last resort of a user without another
        last_resort=step.method in spec.excludes,
    )
    await audit.record(db, audit.EventKind.VERIFICATION_PASSED, outcome="passed", **step.fields)
    await audit.record(db, audit.EventKind.GRANT_MINTED, outcome="minted", **step.fields)
    return {"ok": True, "expiresAt": minted["expiresAt"]}


async def failed(db: SystemDatabase, answer: Answer, detail: str, fields: dict[str, Any]) -> Answer:
    """Audit a failed check (``detail`` says why) and answer ``answer``."""
    await audit.record(
        db, audit.EventKind.VERIFICATION_FAILED, outcome="failed", detail=detail, **fields
    )
    return answer


__all__ = [
    "Answer",
    "StepUp",
    "authorize",
    "begin",
    "check_target",
    "failed",
    "grant",
    "offered",
    "refusal",
    "spend",
    "trail",
]
