"""User profiles for app functions: the engine's API onto its ``_users`` table.

App functions cannot read system tables; these read-only helpers give them what an app needs
(a member list's names and emails, finding a user to invite by email) and nothing more: no
sessions, no password hashes. ``delete_account`` is the one write, and it keeps the user's
audit trail.
"""

from __future__ import annotations

from typing import Any

from backend.auth.devices import forget_all
from backend.auth.sessions import revoke_all
from backend.auth.tables import ACCOUNTS, USERS
from backend.udf.context import MutationCtx, QueryCtx
from backend.udf.system_context import SystemContext
from backend.values.ids import is_id_of

Profile = dict[str, Any]


def _profile(user: dict[str, Any]) -> Profile:
    return {
        "id": user["_id"],
        "email": user["email"],
        "name": user["name"],
        "emailVerified": user["emailVerified"],
        "image": user.get("image"),
    }


async def get_profile(ctx: QueryCtx, user_id: str) -> Profile | None:
    """The public profile of a user, or None."""
    if not is_id_of(user_id, USERS):
        return None
    user = await SystemContext.of(ctx).db.get(user_id)
    return None if user is None else _profile(user)


async def find_by_email(ctx: QueryCtx, email: str) -> Profile | None:
    """The user with this email (compared in lower case), or None."""
    if not isinstance(email, str) or len(email) > 254:
        return None
    db = SystemContext.of(ctx).db
    user = await db.query(USERS).with_index("by_email", email=email.strip().lower()).first()
    return None if user is None else _profile(user)


async def has_password(ctx: QueryCtx, user_id: str) -> bool:
    db = SystemContext.of(ctx).db
    account = await (
        db.query(ACCOUNTS).with_index("by_user", userId=user_id, providerId="credential").first()
    )
    return account is not None


async def delete_account(ctx: MutationCtx, user_id: str) -> None:
    """Delete the user, their linked accounts, every session and every known device. Cannot be
    undone; the audit trail stays."""
    db = SystemContext.of(ctx).db
    await revoke_all(db, user_id)
    await forget_all(db, user_id)
    async for account in db.query(ACCOUNTS).with_index("by_user", userId=user_id):
        await db.delete(account["_id"])
    await db.delete(user_id)
