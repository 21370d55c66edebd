"""The harness helps: rate limits off unless asked, cheap identities with real sessions,
step-up the real way, scheduled work run to the end, internal functions callable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from backend.errors import ConvexError
from backend.testing import RunCtx, TestBackend
from backend.udf.context import ClientInfo
from tests.backend.sensitive.conftest import PASSWORD, cheap_passwords
from tests.conftest import basic_app

ONE_CLIENT = ClientInfo(ip_address="203.0.113.9", user_agent="one client")


@pytest.fixture
async def t(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, app=basic_app(), passwords=cheap_passwords()) as t:
        yield t


@pytest.fixture
async def held(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(
        database_url, app=basic_app(), passwords=cheap_passwords(), hold_scheduled=True
    ) as t:
        yield t


async def _sign_ups_from_one_client(t: TestBackend, count: int) -> list[str]:
    codes = []
    for i in range(count):
        try:
            await t.auth.sign_up(f"user{i}@example.com", PASSWORD, None, ONE_CLIENT)
            codes.append("ok")
        except ConvexError as exc:
            codes.append(str(exc.code))
    return codes


# ---- rate limits ----------------------------------------------------------------------------


async def test_rate_limits_are_off_by_default(t: TestBackend) -> None:
    assert await _sign_ups_from_one_client(t, 15) == ["ok"] * 15
    for i in range(15):
        await t.sign_up(f"again{i}@example.com", PASSWORD)


async def test_rate_limits_are_on_when_asked(database_url: str | None) -> None:
    async with TestBackend(
        database_url, app=basic_app(), passwords=cheap_passwords(), rate_limits=True
    ) as t:
        codes = await _sign_ups_from_one_client(t, 15)
    assert codes[:10] == ["ok"] * 10
    assert codes[10:] == ["RATE_LIMITED"] * 5


async def test_a_reopened_backend_keeps_the_choice(database_url: str | None) -> None:
    async with (
        TestBackend(database_url, app=basic_app(), rate_limits=True) as t,
        t.reopen() as again,
    ):
        assert again.limits.rate_limits is True


# ---- with_identity --------------------------------------------------------------------------


async def test_with_identity_is_a_caller_that_ctx_auth_sees(t: TestBackend) -> None:
    sarah = await t.with_identity(name="Sarah", email="Sarah@Example.com")
    assert await sarah.query("whoami:in_query") == sarah.user_id
    assert await sarah.mutation("whoami:in_mutation") == sarah.user_id
    seen = await sarah.action("whoami:in_action")
    assert seen == {"action": sarah.user_id, "query": sarah.user_id, "mutation": sarah.user_id}
    assert sarah.email == "sarah@example.com"
    assert sarah.user["name"] == "Sarah"
    assert sarah.session_id is not None
    assert (await t.auth.session(sarah.token)) is not None  # a real bearer token too

    async def claims(ctx: RunCtx) -> dict[str, Any]:
        session = await ctx.db.get(str(sarah.session_id))
        assert session is not None
        return dict(session)

    assert (await t.run(claims))["userId"] == sarah.user_id


async def test_the_same_email_or_subject_is_the_same_user_on_a_new_session(
    t: TestBackend,
) -> None:
    first = await t.with_identity(email="ann@example.com")
    again = await t.with_identity(email="ann@example.com", name="ignored")
    by_subject = await t.with_identity(subject=first.user_id)
    assert first.user_id == again.user_id == by_subject.user_id
    assert len({first.session_id, again.session_id, by_subject.session_id}) == 3
    anyone, other = await t.with_identity(), await t.with_identity(name="Bo Li")
    assert anyone.user_id != other.user_id
    assert other.user["name"] == "Bo Li"
    assert other.email.startswith("boli")


async def test_a_subject_that_is_no_user_is_refused(t: TestBackend) -> None:
    counter = await t.mutation("counters:create", {"name": "c"})
    for subject in ("nobody", counter):
        with pytest.raises(TypeError, match="not the id of an existing user"):
            await t.with_identity(subject=subject)


async def test_a_signed_out_identity_is_nobody(t: TestBackend) -> None:
    sam = await t.with_identity(name="Sam")
    assert await t.auth.sign_out(sam.token)
    assert await sam.query("whoami:in_query") is None


# ---- step_up --------------------------------------------------------------------------------


async def test_step_up_by_password_mints_the_grant_a_protected_call_needs(
    t: TestBackend,
) -> None:
    alice = await t.sign_up("alice@example.com", PASSWORD)
    with pytest.raises(ConvexError) as refused:
        await alice.mutation("protected:look", {"name": "x"})
    assert refused.value.code == "SENSITIVE_VERIFICATION_REQUIRED"
    answer = await alice.step_up("thing.look", "x", via="password")
    assert answer["ok"] is True
    assert await alice.mutation("protected:look", {"name": "x"}) == 1
    # bound to the resource, as any grant
    with pytest.raises(ConvexError):
        await alice.mutation("protected:look", {"name": "y"})


async def test_step_up_by_email_reads_the_code_from_the_mail(t: TestBackend) -> None:
    bo = await t.with_identity(name="Bo")
    answer = await bo.step_up("thing.poke", "x")  # no password: the email code
    assert answer["ok"] is True
    assert [m.to for m in t.outbox if m.subject.startswith("Your verification code")] == [bo.email]
    assert await bo.mutation("protected:poke", {"name": "x"}) == 1
    with pytest.raises(ConvexError):  # level 4: the grant was spent
        await bo.mutation("protected:poke", {"name": "x"})


async def test_step_up_by_email_works_while_scheduled_work_is_held(held: TestBackend) -> None:
    cy = await held.with_identity(name="Cy")
    await held.mutation("counters:create", {"name": "n"})
    await held.mutation("counters:schedule_bump", {"name": "n", "seconds": 0})
    await cy.step_up("thing.look", "x", via="email")
    assert await cy.mutation("protected:look", {"name": "x"}) == 1
    assert (await held.query("counters:get", {"name": "n"}))["value"] == 0  # still held


async def test_step_up_fails_loudly(t: TestBackend) -> None:
    dee = await t.with_identity(name="Dee")
    with pytest.raises(TypeError, match="password is unknown"):
        await dee.step_up("thing.look", "x", via="password")
    alice = await t.sign_up("alice@example.com", PASSWORD)
    alice.password = "not the password"
    with pytest.raises(AssertionError, match="INVALID_PASSWORD"):
        await alice.step_up("thing.look", "x")
    with pytest.raises(ConvexError):
        await alice.step_up("no.such.action", "x")


# ---- scheduled work -------------------------------------------------------------------------


async def test_finish_scheduled_runs_a_chain_to_its_end_on_the_fake_clock(
    held: TestBackend,
) -> None:
    start = held.clock.now()
    await held.mutation("chains:start", {"name": "c", "steps": 3, "seconds": 10})
    assert (await held.query("counters:get", {"name": "c"}))["value"] == 0
    assert await held.finish_scheduled() == 3
    assert (await held.query("counters:get", {"name": "c"}))["value"] == 3
    assert held.clock.now() == start + timedelta(seconds=30)
    assert await held.finish_scheduled() == 0


async def test_finish_scheduled_stops_at_its_bound(held: TestBackend) -> None:
    await held.mutation("chains:start_forever", {"name": "f"})
    with pytest.raises(RuntimeError, match="after 5 rounds"):
        await held.finish_scheduled(max_iterations=5)
    assert (await held.query("counters:get", {"name": "f"}))["value"] == 5


async def test_finish_in_progress_runs_what_is_due_and_leaves_the_clock(
    held: TestBackend,
) -> None:
    await held.mutation("counters:create", {"name": "n"})
    await held.mutation("counters:schedule_bump", {"name": "n", "seconds": 0})
    await held.mutation("counters:schedule_bump", {"name": "n", "seconds": 60})
    before = held.clock.now()
    assert await held.finish_in_progress() == 1
    assert (await held.query("counters:get", {"name": "n"}))["value"] == 1
    assert held.clock.now() == before
    held.clock.advance(minutes=1)
    assert await held.finish_in_progress() == 1
    assert (await held.query("counters:get", {"name": "n"}))["value"] == 2


# ---- internal functions ---------------------------------------------------------------------


async def test_internal_functions_are_callable_from_tests(t: TestBackend) -> None:
    await t.mutation("counters:create", {"name": "n"})
    assert await t.mutation("counters:bump", {"name": "n"}) == 1
    user = await t.with_identity()
    await user.action("whoami:job_action")
    # ... but never by a client: the engine's public entry points still refuse them
    with pytest.raises(ConvexError) as refused:
        await t.engine.run_mutation("counters:bump", {"name": "n"})
    assert "Could not find public function" in refused.value.message
