"""Proving an address, and the clean takeover the first proof makes.

An account can exist before anyone has proven its address: a sign-up by email and password,
or an OAuth sign-in at a provider that does not vouch for the email. So anyone can open an
account with someone else's address and wait (account pre-hijacking): when the owner later
proves the address, by a magic link or at a provider that vouches for it, they would land in
an account whose password, sessions and linked identities the attacker chose.

The first proof of the address therefore takes the account over, in the transaction that
signs the prover in:

- every session the account had is revoked, and every device it knew is forgotten;
- the password is dropped, unless the proof is a verification link that names this very
  password: the confirmation mail sent at sign-up asks "did you create this account?", and the
  person who follows it vouches for the account as it stood when the mail was sent (a magic
  link or a provider vouches for the address only, never for a password someone else chose);
- every linked OAuth identity whose provider did not vouch for the address is unlinked;
- the user's ``emailVerified`` becomes true, and the account's password failures are forgotten.

Every later proof only forgets the password failures: that is the remedy that lifts the hard
stop of ``lockout.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.auth import devices, sessions
from backend.auth.lockout import Lockout
from backend.auth.tables import ACCOUNTS
from backend.transactions.transaction import SystemDatabase

CREDENTIAL = "credential"
Document = dict[str, Any]


@dataclass(frozen=True)
class Takeover:
    """What the first proof of an address removed."""

    sessions_revoked: int
    password_dropped: bool
    identities_dropped: int


def password_binding(account: Document | None) -> str | None:
    """What a verification link names to confirm a password: the credential and when it was
    set. None for an account without a password."""
    if account is None or account.get("passwordHash") is None:
        return None
    set_at = account.get("passwordSetAt") or account["createdAt"]
    return f"{account['_id']}:{set_at!r}"


async def credential(db: SystemDatabase, user_id: str) -> Document | None:
    return await (
        db.query(ACCOUNTS).with_index("by_user", userId=user_id, providerId=CREDENTIAL).first()
    )


async def prove_address(
    db: SystemDatabase,
    user: Document,
    lockout: Lockout,
    *,
    confirms_password: str | None = None,
    keep_identity: str | None = None,
) -> tuple[Document, Takeover | None]:
    """The user's address was just proven. The first time, take the account over (see the
    module's docstring); ``confirms_password`` is the ``password_binding`` a verification
    link names, ``keep_identity`` the ``_id`` of the OAuth identity making the proof. Returns
    the user as it now is, and what the takeover removed (None after the first proof)."""
    device_hashes: list[str] = []
    takeover: Takeover | None = None
    if not user["emailVerified"]:
        user_id = user["_id"]
        revoked = await sessions.revoke_all(db, user_id)
        device_hashes = await devices.forget_all(db, user_id)
        dropped_password = False
        dropped_identities = 0
        for account in await db.query(ACCOUNTS).with_index("by_user", userId=user_id).collect():
            if account["providerId"] == CREDENTIAL:
                confirmed = confirms_password is not None and (
                    password_binding(account) == confirms_password
                )
                if not confirmed:
                    await db.delete(account["_id"])
                    dropped_password = True
            elif account["_id"] != keep_identity and account.get("emailVerified") is not True:
                await db.delete(account["_id"])
                dropped_identities += 1
        now = db.now_ms
        await db.patch(user_id, {"emailVerified": True, "updatedAt": now})
        user = {**user, "emailVerified": True, "updatedAt": now}
        takeover = Takeover(revoked, dropped_password, dropped_identities)
    await lockout.clear(
        db,
        user["email"],
        [lockout.device_key(user["_id"], device_hash) for device_hash in device_hashes],
    )
    return user, takeover


__all__ = ["Takeover", "credential", "password_binding", "prove_address"]
