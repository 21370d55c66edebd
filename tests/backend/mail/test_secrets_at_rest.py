"""Secrets at rest: a copy of the database (documents and the append-only log, read raw) holds
no sign-in link, token or code, before or after delivery, and signs nobody in without
``SECRET_KEY``."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from backend.auth.sessions import resolve_identity
from backend.engine import Engine
from backend.errors import ConvexError
from backend.mail import SECRET, CaptureTransport, MailTransport, install_seal
from backend.mail.smtp import SmtpTransport
from backend.runtime import Runtime
from backend.scheduler import SchedulerWorker
from backend.storage.store import Store
from backend.system import system_functions, system_schema
from backend.testing import TestBackend
from backend.udf.context import ClientInfo
from tests.backend.sensitive.conftest import PASSWORD, cheap_passwords
from tests.support.live_server import free_port
from tests.support.raw_database import copy_database, drop_copy, dump

CLIENT = ClientInfo(ip_address="203.0.113.9", user_agent="attacker")
LINK = re.compile(r"https?://\S+/api/auth/(?:magic-link/verify|verify-email)\?\S+")
CODE = re.compile(r"\b(\d{6})\b")
# A run of base64url characters exactly as long as a 32-byte token, and not part of a longer one.
TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


@pytest.fixture
async def held(database_url: str | None) -> AsyncIterator[TestBackend]:
    """The demo app with mail held in the outbox until ``run_scheduled``."""
    async with TestBackend(database_url, hold_scheduled=True, passwords=cheap_passwords()) as t:
        yield t


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def _absent(secret: str, haystack: str) -> bool:
    if secret.isdigit():  # a code: not as a number of its own (hex and timestamps hold digits)
        return re.search(rf"\b{secret}\b", haystack) is None
    return secret not in haystack


async def test_a_database_copy_reveals_no_link_token_or_code_queued_or_sent(
    held: TestBackend,
) -> None:
    alice = await held.sign_up("alice@example.com", PASSWORD)
    await held.auth.request_magic_link("alice@example.com", "/welcome", CLIENT)
    await held.auth.request_magic_link("newcomer@example.com", None, CLIENT)
    sent = await alice.mutation("sensitive:sendEmailCode", {"action": "account.delete"})
    assert sent["ok"] is True
    queued = await dump(held.engine.store)

    # alice's sign-up confirmation link, two magic links and a code
    assert await held.run_scheduled() == 4
    links = [m for mail in held.outbox for m in LINK.findall(mail.text)]
    codes = [c for mail in held.outbox for c in CODE.findall(mail.text)]
    assert len(links) == 3
    assert len(codes) == 1
    secrets = [*links, *(_token(link) for link in links), *codes]
    delivered = await dump(held.engine.store)

    for secret in secrets:
        assert _absent(secret, queued), "a queued mail's secret is readable in the database"
        assert _absent(secret, delivered), "a sent mail's secret is readable in the database"
    # What the log keeps of them is sealed; the live documents keep nothing once sent.
    assert queued.count('"sealedSecret": "v1.') + queued.count('"sealedSecret":"v1.') >= 4
    entries = await held.run(lambda ctx: ctx.db.query("_outbox").collect())
    assert [(e["state"], e.get("sealedSecret")) for e in entries] == [("sent", None)] * 4
    assert all(SECRET in e["subject"] + e["text"] for e in entries)


async def test_a_database_copy_without_the_secret_key_cannot_sign_in(held: TestBackend) -> None:
    await held.auth.request_magic_link("victim@example.com", None, CLIENT)
    with tempfile.TemporaryDirectory(prefix="stolen-") as workdir:
        url, pg_schema = await copy_database(held.engine.store, Path(workdir))
        try:
            stolen = Store(url, pg_schema=pg_schema)
            try:
                # 1. Whatever in the copy looks like a link token does not sign in on the server.
                candidates = set(TOKEN_LIKE.findall(await dump(stolen)))
                for candidate in candidates:
                    with pytest.raises(ConvexError) as refused:
                        await held.auth.verify_magic_link(candidate, CLIENT)
                    assert refused.value.code == "INVALID_TOKEN"
                # 2. Nor does running a server of one's own on the copy, with a guessed key:
                # the queued mail does not open, so nothing is sent, and it is dropped.
                mailbox = CaptureTransport()
                engine = Engine(
                    stolen,
                    held.app,
                    system_schema=system_schema(),
                    system_functions=system_functions(),
                    runtime=Runtime(clock=held.clock),
                    identity_resolver=resolve_identity,
                    mail_transport=mailbox,
                )
                install_seal(engine, "a guess at the secret key")
                await SchedulerWorker(engine).run_due()
                assert mailbox.sent == []
                (entry,) = await engine.system_read(lambda db: db.query("_outbox").collect())
                assert (entry["state"], entry["lastError"]) == ("failed", "SealBroken")
                assert entry.get("sealedSecret") is None
            finally:
                await stolen.close()
        finally:
            await drop_copy(url, pg_schema)
    # The link was live all along: the server with the key delivers it, and it signs in.
    await held.run_scheduled()
    (mail,) = held.outbox
    (link,) = LINK.findall(mail.text)
    signed_in = await held.auth.verify_magic_link(_token(link), CLIENT)
    assert signed_in.user["email"] == "victim@example.com"


async def test_a_mail_given_up_on_keeps_no_secret(held: TestBackend) -> None:
    # A real SMTP client against a port nobody listens on: every attempt fails to connect.
    held.engine.services.register(
        MailTransport, SmtpTransport(f"smtp://127.0.0.1:{free_port()}", runtime=held.engine.runtime)
    )
    await held.auth.request_magic_link("alice@example.com", None, CLIENT)
    for _ in range(8):
        await held.run_scheduled()
        held.clock.advance(hours=1)
    (entry,) = await held.run(lambda ctx: ctx.db.query("_outbox").collect())
    assert (entry["state"], entry["attempts"]) == ("failed", 8)
    assert entry.get("sealedSecret") is None
