"""The dev mailbox: what ``/api/dev/outbox`` shows, and what it never writes down or logs."""

from __future__ import annotations

import logging
import re

import pytest

from backend.mail import DevOutboxTransport, MailTransport, dev_outbox
from backend.testing import TestBackend
from backend.udf.context import ClientInfo
from tests.backend.sensitive.conftest import cheap_passwords
from tests.conftest import basic_app

CLIENT = ClientInfo(ip_address="127.0.0.1", user_agent="test")


async def test_the_dev_outbox_shows_queued_then_delivered_mail_once_each(
    database_url: str | None,
) -> None:
    async with TestBackend(database_url, hold_scheduled=True, passwords=cheap_passwords()) as t:
        mailbox = DevOutboxTransport(runtime=t.engine.runtime)
        t.engine.services.register(MailTransport, mailbox)
        await t.auth.request_magic_link("ada@example.com", None, CLIENT)
        (queued,) = await dev_outbox(t.engine, "ada@example.com")
        assert queued["sentAt"] is None
        assert re.search(r"/api/auth/magic-link/verify\?token=[\w-]{43}", queued["text"])

        await t.run_scheduled()
        await t.auth.request_magic_link("ada@example.com", None, CLIENT)
        newest, sent = await dev_outbox(t.engine, "ada@example.com")
        assert (newest["sentAt"], sent["sentAt"]) == (None, t.clock.now().timestamp() * 1000)
        assert sent["text"] == queued["text"]  # the same mail, now from the mailbox
        assert await dev_outbox(t.engine, "someone@example.com") == []


async def test_the_dev_mailbox_logs_no_code_or_link(
    database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with TestBackend(database_url, app=basic_app(), passwords=cheap_passwords()) as t:
        await _mail_a_code_and_a_link(t, caplog)


async def _mail_a_code_and_a_link(basic_t: TestBackend, caplog: pytest.LogCaptureFixture) -> None:
    basic_t.engine.services.register(
        MailTransport, DevOutboxTransport(runtime=basic_t.engine.runtime)
    )
    caplog.set_level(logging.DEBUG)
    alice = await basic_t.sign_up("alice@example.com", "correct horse battery")
    await alice.mutation("sensitive:sendEmailCode", {"action": "thing.look", "resource": "x"})
    await basic_t.auth.request_magic_link("alice@example.com", None, CLIENT)
    await basic_t.run_scheduled()
    shown = await dev_outbox(basic_t.engine, "alice@example.com")
    assert len(shown) == 3  # newest first: the link, the code, the sign-up confirmation
    code = re.search(r"\b\d{6}\b", shown[1]["text"])
    tokens = [re.search(r"token=([\w-]+)", shown[i]["text"]) for i in (0, 2)]
    assert code is not None
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert code.group(0) not in logged
    for token in tokens:
        assert token is not None
        assert token.group(1) not in logged
    assert "verification code" not in logged  # nor a subject, which could hold one
