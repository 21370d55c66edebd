"""SMTP delivery against a real SMTP server (aiosmtpd on 127.0.0.1), alone and behind the outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from backend.mail.outbox import DevOutboxTransport, Mail, MailTransport
from backend.mail.smtp import SmtpSettings, SmtpTransport, parse_smtp_url, transport_from_url
from backend.runtime import FakeClock, Runtime
from backend.testing import TestBackend
from tests.conftest import basic_app

CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)


def _free_port() -> int:
    """An ephemeral port nobody listens on (yet): aiosmtpd needs a fixed port to start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


class SmtpServer:
    """An aiosmtpd server on one port of 127.0.0.1 that can be stopped and started again."""

    def __init__(self, port: int, **smtp_options: Any) -> None:
        self.port = port
        self.inbox = Inbox()
        self._options = smtp_options
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        # A stopped controller's loop is closed, so every start takes a new controller.
        controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            **self._options,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(_free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _body(message: EmailMessage) -> str:
    """The decoded text, with the wire's CRLF line ends back to newlines."""
    content = message.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def _transport(url: str, **options: Any) -> SmtpTransport:
    runtime = Runtime(clock=FakeClock(CLOCK_START))
    return SmtpTransport(url, local_hostname="localhost", runtime=runtime, **options)


# ---- the transport alone -------------------------------------------------------------------


async def test_a_mail_arrives_with_proper_headers(smtp_server: SmtpServer) -> None:
    transport = _transport(smtp_server.url, from_address="Acme <no-reply@acme.test>")
    text = "Your code is 123456.\nhttps://app.test/verify?token=abc&next=/"
    await transport.send(Mail("bob@example.com", "Your sign-in code", text))
    (envelope,) = smtp_server.inbox.envelopes
    assert envelope.mail_from == "no-reply@acme.test"
    assert envelope.rcpt_tos == ["bob@example.com"]
    (message,) = smtp_server.inbox.messages
    assert message["From"] == "Acme <no-reply@acme.test>"
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "Your sign-in code"
    assert message["Date"].datetime == CLOCK_START
    assert message["Message-ID"].startswith("<")
    assert message["Message-ID"].endswith("@acme.test>")
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert _body(message) == text + "\n"


async def test_unicode_subjects_and_bodies_survive(smtp_server: SmtpServer) -> None:
    await _transport(smtp_server.url).send(Mail("zoe@example.com", "Café ✓", "Grüße, 👋"))
    (message,) = smtp_server.inbox.messages
    assert message["Subject"] == "Café ✓"
    assert _body(message) == "Grüße, 👋\n"
    assert message["From"] == "no-reply@localhost"


async def test_each_message_gets_its_own_id(smtp_server: SmtpServer) -> None:
    transport = _transport(smtp_server.url)
    for _ in range(2):
        await transport.send(Mail("a@example.com", "Hi", "Body"))
    first, second = smtp_server.inbox.messages
    assert first["Message-ID"] != second["Message-ID"]


async def test_credentials_in_the_url_are_used_to_log_in() -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        # handled=False: aiosmtpd answers a refusal with 535 only when told it did not.
        return AuthResult(success=data.password == b"p@ss:w/rd", handled=False)

    # Auth over plain TCP is allowed only here, on loopback, for the test.
    server = SmtpServer(_free_port(), authenticator=authenticator, auth_require_tls=False)
    server.start()
    try:
        good = f"smtp://me%40acme.test:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}"
        await _transport(good).send(Mail("a@example.com", "Hi", "Body"))
        assert len(server.inbox.envelopes) == 1
        bad = f"smtp://me%40acme.test:wrong@127.0.0.1:{server.port}"
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await _transport(bad).send(Mail("a@example.com", "Hi", "Body"))
        assert len(server.inbox.envelopes) == 1
        assert logins[0] == (b"me@acme.test", b"p@ss:w/rd")
        # aiosmtplib tries each mechanism the server offers before giving up.
        assert set(logins[1:]) == {(b"me@acme.test", b"wrong")}
    finally:
        server.stop()


async def test_a_stopped_server_makes_the_send_raise(smtp_server: SmtpServer) -> None:
    transport = _transport(smtp_server.url)
    smtp_server.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await transport.send(Mail("a@example.com", "Hi", "Body"))


async def test_required_starttls_is_never_skipped(smtp_server: SmtpServer) -> None:
    transport = _transport(smtp_server.url + "?starttls=1")
    with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
        await transport.send(Mail("a@example.com", "Hi", "Body"))
    assert smtp_server.inbox.envelopes == []


async def test_a_silent_server_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept the connection, never greet

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transport = _transport(f"smtp://127.0.0.1:{port}", timeout=timedelta(milliseconds=200))
        with pytest.raises(aiosmtplib.SMTPTimeoutError):
            await asyncio.wait_for(transport.send(Mail("a@example.com", "Hi", "Body")), 5)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "mail",
    [
        Mail("a@example.com", "Hi\r\nBcc: victim@example.com", "Body"),
        Mail("a@example.com, victim@example.com", "Hi", "Body"),
        Mail("Victim <victim@example.com>", "Hi", "Body"),
        Mail("not-an-address", "Hi", "Body"),
        Mail("zoë@example.com", "Hi", "Body"),  # SMTPUTF8 local parts are not supported
    ],
)
async def test_malformed_mail_is_refused_before_sending(
    smtp_server: SmtpServer, mail: Mail
) -> None:
    with pytest.raises(ValueError, match=r"linefeed|single email address"):
        await _transport(smtp_server.url).send(mail)
    assert smtp_server.inbox.envelopes == []


# ---- the URL -------------------------------------------------------------------------------


def test_smtp_urls() -> None:
    assert parse_smtp_url("smtp://mail.test") == SmtpSettings("mail.test", 25)
    assert parse_smtp_url("smtp://mail.test:2525?starttls=1") == SmtpSettings(
        "mail.test", 2525, start_tls=True
    )
    assert parse_smtp_url("smtp://mail.test?starttls=1").port == 587
    assert parse_smtp_url("smtp://mail.test?starttls=0").start_tls is False
    assert parse_smtp_url("smtps://u%40x:p%2Fw@mail.test") == SmtpSettings(
        "mail.test", 465, "u@x", "p/w", use_tls=True, start_tls=False
    )
    for bad in (
        "http://mail.test",
        "smtp://",
        "smtp://mail.test:99999",
        "smtp://mail.test?tls=1",
        "smtp://mail.test?starttls=maybe",
        "smtps://mail.test?starttls=1",
    ):
        with pytest.raises(ValueError, match="SMTP_URL"):
            parse_smtp_url(bad)


def test_the_password_never_shows_in_a_repr() -> None:
    transport = SmtpTransport("smtps://user:hunter2@mail.test")
    assert "hunter2" not in repr(transport)
    assert "hunter2" not in repr(transport.settings)
    with pytest.raises(ValueError, match="SMTP_URL") as info:
        parse_smtp_url("ftp://user:hunter2@mail.test")
    assert "hunter2" not in str(info.value)


def test_transport_from_url() -> None:
    assert isinstance(transport_from_url(None), DevOutboxTransport)
    assert isinstance(transport_from_url("  "), DevOutboxTransport)
    smtp = transport_from_url("smtp://mail.test:2525", from_address="x@acme.test")
    assert isinstance(smtp, SmtpTransport)
    assert smtp.settings.port == 2525
    assert smtp.sender.addr_spec == "x@acme.test"
    with pytest.raises(ValueError, match="from_address"):
        SmtpTransport("smtp://mail.test", from_address="nobody")


# ---- behind the outbox, end to end ---------------------------------------------------------


@pytest.fixture
async def backend(database_url: str | None, smtp_server: SmtpServer) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, app=basic_app()) as t:
        t.engine.services.register(
            MailTransport,
            SmtpTransport(smtp_server.url, local_hostname="localhost", runtime=t.engine.runtime),
        )
        yield t


async def _outbox(t: TestBackend) -> list[dict[str, Any]]:
    return await t.run(lambda ctx: ctx.db.query("_outbox").collect())


async def test_queued_mail_reaches_the_server_after_commit(
    backend: TestBackend, smtp_server: SmtpServer
) -> None:
    await backend.mutation("jobs:mail_then", {"to": "a@example.com", "fail": False})
    (message,) = smtp_server.inbox.messages
    assert message["To"] == "a@example.com"
    assert message["Subject"] == "Hello"
    assert _body(message) == "Body\n"
    (entry,) = await _outbox(backend)
    assert (entry["state"], entry["attempts"]) == ("sent", 1)


async def test_a_rolled_back_mutation_sends_nothing(
    backend: TestBackend, smtp_server: SmtpServer
) -> None:
    with pytest.raises(Exception, match="rolled back"):
        await backend.mutation("jobs:mail_then", {"to": "a@example.com", "fail": True})
    assert await backend.run_scheduled() == 0
    assert smtp_server.inbox.envelopes == []
    assert await _outbox(backend) == []


async def test_mail_waits_for_a_server_that_was_down(
    backend: TestBackend, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    await backend.mutation("jobs:mail_then", {"to": "a@example.com", "fail": False})
    (entry,) = await _outbox(backend)
    assert (entry["state"], entry["attempts"]) == ("queued", 1)
    assert entry["lastError"] == "SMTPConnectError"

    smtp_server.start()
    backend.clock.advance(seconds=1)  # the first retry waits 2 s
    assert await backend.run_scheduled() == 0
    assert smtp_server.inbox.envelopes == []
    backend.clock.advance(seconds=1)
    assert await backend.run_scheduled() == 1
    (message,) = smtp_server.inbox.messages
    assert message["To"] == "a@example.com"
    (entry,) = await _outbox(backend)
    assert (entry["state"], entry["attempts"]) == ("sent", 2)
