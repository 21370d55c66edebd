"""User profiles for app functions: the engine's API onto its ``_users`` table.

App functions cannot read system tables; these read-only helpers give them what an app needs
(a member list's names and emails, finding a user to invite by email) and nothing more: no
sessions, no password hashes. ``delete_account`` is the one write, and it keeps the user's
audit trail.
"""

from __future__ import annotations

from typing import Any

from backend.auth.devices import forget_all
from backend.auth.proof import credential
from backend.auth.sessions import revoke_all, user_profile
from backend.auth.tables import ACCOUNTS, USERS
from backend.udf.context import MutationCtx, QueryCtx
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

Profile = dict[str, Any]


async def get_profile(ctx: QueryCtx, user_id: str) -> Profile | None:
    """The public profile ``{id, email, name, emailVerified, image}`` of a user, or None for
    a string that is no user id or a user that does not exist (deleted, say)."""
    if not is_id_of(user_id, USERS):
        return None
    user = await SystemContext.of(ctx).db.get(user_id)
    return None if user is None else user_profile(user)


async def find_by_email(ctx: QueryCtx, email: str) -> Profile | None:
    """The profile of the user with this email (compared in lower case), or None. It tells
    whether an address has an account: rate limit whoever may ask (``functions/members.py``)."""
    if not isinstance(email, str) or len(email) > 254:
        return None
    db = SystemContext.of(ctx).db
    user = await db.query(USERS).with_index("by_email", email=email.strip().lower()).first()
    return None if user is None else user_profile(user)


async def has_password(ctx: QueryCtx, user_id: str) -> bool:
    """Whether the user can sign in with a password (and so verify with one)."""
    return await credential(SystemContext.of(ctx).db, user_id) is not None


async def delete_account(ctx: MutationCtx, user_id: str) -> None:
    """Delete the user, their linked accounts, every session and every known device, in the
    mutation's transaction. Cannot be undone; the audit trail stays. Raises ``NOT_FOUND`` for
    a user that does not exist. The app decides who may do this (and should guard it with
    ``require_sensitive_action``)."""
    db = SystemContext.of(ctx).db
    await revoke_all(db, user_id)
    await forget_all(db, user_id)
    async for account in db.query(ACCOUNTS).with_index("by_user", userId=user_id):
        await db.delete(account["_id"])
    await db.delete(user_id)
