"""Engine code written as a subsystem writes it, through the system context (tests of the
seam between the engine and its subsystems)."""

from typing import Any

from backend import ConvexError, MutationCtx, mutation
from backend.audit import EventKind, record
from backend.mail import SecretSeal
from backend.transactions.transaction import SystemDatabase
from backend.udf.system_context import SystemContext


class Unregistered:
    """A service no assembly registers."""


@mutation
async def look(ctx: MutationCtx) -> dict[str, Any]:
    system = SystemContext.of(ctx)
    identity = await system.auth.get_user_identity()
    return {
        "ip": system.client.ip_address if system.client else None,
        "sameNow": system.now == ctx.now and system.now_ms == ctx.now_ms,
        "subject": identity.subject if identity else None,
        "seal": type(system.service(SecretSeal)).__name__,
        "jobs": len(await system.db.query("_scheduled_functions").collect()),
    }


@mutation
async def keep_then_fail(ctx: MutationCtx, note: str) -> None:
    async def keep(db: SystemDatabase) -> None:
        await record(db, EventKind.ACTION_REFUSED, outcome=note)

    SystemContext.of(ctx).durably(keep)
    raise ConvexError("NOPE", "rolled back")


@mutation
async def ask_for_unregistered(ctx: MutationCtx) -> None:
    SystemContext.of(ctx).service(Unregistered)
