"""The first proof of an address takes the account over; later proofs change nothing but the
failure count. Through the engine, on each database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backend.auth.passwords import Passwords
from backend.auth.service import Unverified
from backend.errors import ConvexError
from backend.testing import RunCtx, TestBackend
from backend.udf.context import ClientInfo
from tests.backend.sensitive.conftest import PASSWORD, cheap_passwords
from tests.conftest import basic_app

VICTIM = "ada@example.com"
PLANTED = "the attacker chose this"


@pytest.fixture
async def t(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, app=basic_app(), passwords=cheap_passwords()) as backend:
        yield backend


async def rows(t: TestBackend, table: str, user_id: str) -> list[dict[str, Any]]:
    async def read(ctx: RunCtx) -> list[dict[str, Any]]:
        found = await ctx.db.query(table).collect()
        return [row for row in found if row.get("userId") == user_id]

    return await t.run(read)


async def test_a_vouched_oauth_sign_in_takes_a_planted_password_account_over(
    t: TestBackend,
) -> None:
    attacker = await t.sign_up(VICTIM, PLANTED)
    again = await t.sign_in(VICTIM, PLANTED)  # a second browser of the attacker's
    assert len(await rows(t, "_devices", attacker.user_id)) == 2

    owner = await t.sign_in_oauth("google", VICTIM)

    assert owner.user_id == attacker.user_id
    assert owner.user["emailVerified"] is True
    sessions = await rows(t, "_sessions", owner.user_id)
    assert [s["_id"] for s in sessions] == [owner.session_id]  # every older session revoked
    accounts = await rows(t, "_accounts", owner.user_id)
    assert [a["providerId"] for a in accounts] == ["google"]  # the password is gone
    assert len(await rows(t, "_devices", owner.user_id)) == 1  # the owner's browser alone
    for handle in (attacker, again):
        assert await handle.query("notes:whoami", {}) is None
    with pytest.raises(ConvexError) as refused:
        await t.sign_in(VICTIM, PLANTED)
    assert refused.value.code == "INVALID_EMAIL_OR_PASSWORD"


async def test_a_magic_link_unlinks_an_identity_the_provider_did_not_vouch_for(
    t: TestBackend,
) -> None:
    lax = await t.sign_in_oauth("lax", VICTIM, email_verified=False)  # makes the account
    assert lax.user["emailVerified"] is False
    owner = await t.sign_in_magic_link(VICTIM)
    assert owner.user_id == lax.user_id
    assert await lax.query("notes:whoami", {}) is None
    assert await rows(t, "_accounts", owner.user_id) == []
    with pytest.raises(ConvexError) as unlinked:
        await t.sign_in_oauth("lax", VICTIM, email_verified=False)
    assert unlinked.value.code == "OAUTH_ACCOUNT_NOT_LINKED"


async def test_later_proofs_leave_the_account_as_it_is(t: TestBackend) -> None:
    await t.sign_up(VICTIM, PASSWORD)
    owner = await t.verify_email(VICTIM)  # the first proof: the sign-up's own link
    other = await t.sign_in(VICTIM, PASSWORD)
    await t.sign_in_magic_link(VICTIM)
    await t.sign_in_oauth("google", VICTIM)
    assert await owner.query("notes:whoami", {}) == owner.user_id
    assert await other.query("notes:whoami", {}) == owner.user_id
    providers = sorted(a["providerId"] for a in await rows(t, "_accounts", owner.user_id))
    assert providers == ["credential", "google"]


async def test_with_required_verification_the_harness_user_still_signs_up_and_acts(
    database_url: str | None,
) -> None:
    async with TestBackend(
        database_url,
        app=basic_app(),
        passwords=cheap_passwords(),
        require_email_verification=True,
    ) as strict:
        alice = await strict.sign_up("alice@example.com", PASSWORD)  # follows the link
        assert alice.user["emailVerified"] is True
        assert await alice.query("notes:whoami", {}) == alice.user_id
        assert (await strict.sign_in("alice@example.com", PASSWORD)).user_id == alice.user_id
        created = await strict.auth.sign_up(
            "bob@example.com", PASSWORD, None, ClientInfo(ip_address="127.0.0.1")
        )
        assert isinstance(created, Unverified)  # no session
        with pytest.raises(ConvexError) as unverified:
            await strict.sign_in("bob@example.com", PASSWORD)
        assert unverified.value.code == "EMAIL_NOT_VERIFIED"


class GatedPasswords(Passwords):
    """Real argon2, but a check waits at a gate: a takeover can land while it runs."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024)
        self.closed = False
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        if self.closed:
            self.entered.set()
            await self.gate.wait()
        return await super().verify(stored, password)


async def test_a_sign_in_whose_password_was_dropped_while_it_was_checked_gets_nothing(
    database_url: str | None,
) -> None:
    passwords = GatedPasswords()
    async with TestBackend(database_url, app=basic_app(), passwords=passwords) as gated:
        await gated.sign_up(VICTIM, PLANTED)
        passwords.closed = True
        attempt = asyncio.create_task(gated.sign_in(VICTIM, PLANTED))
        await passwords.entered.wait()
        owner = await gated.sign_in_magic_link(VICTIM)  # the takeover, mid-check
        passwords.gate.set()
        with pytest.raises(ConvexError) as refused:
            await attempt
        assert refused.value.code == "INVALID_EMAIL_OR_PASSWORD"
        sessions = await rows(gated, "_sessions", owner.user_id)
        assert [s["_id"] for s in sessions] == [owner.session_id]
