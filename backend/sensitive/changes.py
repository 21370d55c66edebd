"""Factor changes are protected actions: the engine's own, declared here, level 3.

A stolen session must not be able to swap the factors that guard the account: adding or
removing a passkey or an authenticator app, making new backup codes, changing the password
and changing the email address each need a grant, like any level-3 action, and the proof
may not come from the factor being changed (``excludes``; removing a passkey is never proven
by that passkey, ``not_by_resource``). An app cannot redeclare these names.

After every change the account's address is told (``notify``): what changed, when, and from
which client, so that an owner who did not do it learns of it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from backend import audit
from backend.auth.sessions import SessionInfo
from backend.mail import Mail, queue_mail
from backend.sensitive.factors import PASSKEYS
from backend.sensitive.records import trail
from backend.sensitive.registry import SensitiveAction, SensitiveActions
from backend.udf.context import QueryCtx
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

PASSKEY_ADD = "factor.passkey.add"
PASSKEY_REMOVE = "factor.passkey.remove"
TOTP_ADD = "factor.totp.add"
TOTP_REMOVE = "factor.totp.remove"
BACKUP_CODES_REGENERATE = "factor.backup_codes.regenerate"
PASSWORD_CHANGE = "account.password.change"  # noqa: S105 (an action's name)
EMAIL_CHANGE = "account.email.change"


def _no_resource(_ctx: QueryCtx, resource: str | None) -> bool:
    return resource is None


async def _own_passkey(ctx: QueryCtx, resource: str | None) -> bool:
    if resource is None or not is_id_of(resource, PASSKEYS):
        return False
    system = SystemContext.of(ctx)
    identity = await system.auth.get_user_identity()
    found = await system.db.get(resource)
    return identity is not None and found is not None and found["userId"] == identity.subject


async def _describe_passkey_removal(ctx: QueryCtx, resource: str | None) -> str:
    found = await SystemContext.of(ctx).db.get(resource) if resource else None
    name = found["name"] if found else "this passkey"
    return f"Remove the passkey “{name}” from your account"


BUILTIN_ACTIONS = SensitiveActions(
    SensitiveAction(
        PASSKEY_ADD, 3, "Add a passkey to your account", authorize=_no_resource, builtin=True
    ),
    SensitiveAction(
        PASSKEY_REMOVE,
        3,
        _describe_passkey_removal,
        authorize=_own_passkey,
        not_by_resource=True,
        builtin=True,
    ),
    SensitiveAction(
        TOTP_ADD, 3, "Set up an authenticator app", authorize=_no_resource, builtin=True
    ),
    SensitiveAction(
        TOTP_REMOVE,
        3,
        "Remove your authenticator app",
        authorize=_no_resource,
        excludes=frozenset({"totp"}),
        builtin=True,
    ),
    SensitiveAction(
        BACKUP_CODES_REGENERATE,
        3,
        "Make new backup codes (the old ones stop working)",
        authorize=_no_resource,
        excludes=frozenset({"backup_code"}),
        builtin=True,
    ),
    SensitiveAction(
        PASSWORD_CHANGE,
        3,
        "Change your password",
        authorize=_no_resource,
        excludes=frozenset({"password"}),
        builtin=True,
    ),
    SensitiveAction(
        EMAIL_CHANGE,
        3,
        "Change your email address",
        authorize=_no_resource,
        excludes=frozenset({"email"}),
        # an account with nothing but its address: both mailboxes confirm the change anyway
        last_resort=frozenset({"email"}),
        builtin=True,
    ),
)


def client_line(system: SystemContext) -> str:
    """Which client did it, as a mail says it."""
    client = system.client
    agent = (client.user_agent if client else None) or "an unknown client"
    address = client.ip_address if client and client.ip_address else "an unknown address"
    return f"{agent[:200]} at {address}"


def notice(to: str, subject: str, what: str, *, when: datetime, client: str) -> Mail:
    """The mail after a factor change or a critical action: what, when, from where."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Mail(
        to=to,
        subject=subject,
        text=(
            f"{what}\n\nWhen: {stamp}\nFrom: {client}\n\n"
            "If this was not you, sign in now, sign out your other sessions, and check the "
            "passkeys, authenticator app and backup codes on your account's Security page."
        ),
    )


async def notify(system: SystemContext, who: SessionInfo, subject: str, what: str) -> None:
    """Queue ``notice`` to the account's address in this transaction (sent if it commits)."""
    await queue_mail(
        system,
        notice(
            str(who.user["email"]),
            subject,
            what,
            when=system.now,
            client=client_line(system),
        ),
    )


async def record_change(
    system: SystemContext,
    who: SessionInfo,
    event: audit.EventKind,
    method: str,
    *,
    subject: str,
    what: str,
    resource: str | None = None,
    action: str | None = None,
) -> None:
    """Audit a factor change and mail the account about it."""
    fields = trail(system, who, action, resource, method)
    await audit.record(system.db, event, outcome="done", **fields)
    await notify(system, who, subject, what)


__all__ = [
    "BACKUP_CODES_REGENERATE",
    "BUILTIN_ACTIONS",
    "EMAIL_CHANGE",
    "PASSKEY_ADD",
    "PASSKEY_REMOVE",
    "PASSWORD_CHANGE",
    "TOTP_ADD",
    "TOTP_REMOVE",
    "client_line",
    "notice",
    "notify",
    "record_change",
]
