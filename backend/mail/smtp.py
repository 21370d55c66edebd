"""SMTP delivery for the outbox: ``SmtpTransport`` and ``transport_from_url``.

``SMTP_URL`` says where mail goes:

- ``smtp://host:port``: plain SMTP, upgraded with STARTTLS when the server offers it;
- ``smtp://host:port?starttls=1``: STARTTLS required (a server without it fails the send, so
  mail is never quietly sent in the clear); ``?starttls=0`` never upgrades (a local relay);
- ``smtps://host:port``: TLS from the first byte (implicit TLS, usually port 465);
- ``smtp://user:password@host:port``: log in first; both parts are percent-decoded.

The transport only hands a message to the server. Queueing, retries with backoff and the
at-least-once guarantee are the outbox's (``backend/mail/outbox.py``): ``send`` simply raises
when the server cannot be reached, refuses the message or does not answer in time.

Mail bodies hold sign-in codes and links, so nothing here logs a body (nor the password).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from backend.mail.outbox import DevOutboxTransport, Mail, MailTransport
from backend.runtime import Runtime

log = logging.getLogger("backend.mail.smtp")
DEFAULT_FROM = "no-reply@localhost"
DEFAULT_TIMEOUT = timedelta(seconds=10)
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_STARTTLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect, as read from an ``SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None  # None: upgrade if offered; True: required; False: never

    def __repr__(self) -> str:
        # The password must not reach a log line or a traceback through a repr.
        scheme = "smtps" if self.use_tls else "smtp"
        user = f"{self.username}:***@" if self.username is not None else ""
        return f"SmtpSettings({scheme}://{user}{self.host}:{self.port}, start_tls={self.start_tls})"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read an ``SMTP_URL``. Raises ``ValueError`` saying what was expected; the message never
    repeats the URL, which may hold a password."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {scheme or '?'}://")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    try:
        explicit_port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL has an invalid port") from None
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - {"starttls"}
    if unknown:
        raise ValueError(f"SMTP_URL has unknown options {sorted(unknown)}; expected starttls")
    start_tls: bool | None = None
    if "starttls" in options:
        flag = options["starttls"][-1].lower()
        if flag not in _STARTTLS:
            raise ValueError("SMTP_URL: starttls must be 1 or 0")
        start_tls = _STARTTLS[flag]
    use_tls = scheme == "smtps"
    if use_tls and start_tls:
        raise ValueError("SMTP_URL: smtps:// is TLS already; starttls=1 applies to smtp://")
    if use_tls:
        start_tls = False  # nothing to upgrade
    default_port = 587 if start_tls else _DEFAULT_PORTS[scheme]
    return SmtpSettings(
        host=parts.hostname,
        port=explicit_port if explicit_port is not None else default_port,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=use_tls,
        start_tls=start_tls,
    )


def _single_address(value: str, what: str) -> Address:
    """One plain address (``a@b``), refusing lists, display names and header tricks."""
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{what} is not a single email address") from exc
    if not address.username or not address.domain:
        raise ValueError(f"{what} is not a single email address")
    return address


class SmtpTransport(MailTransport):
    """A ``MailTransport`` that hands each mail to an SMTP server.

    ``from_address`` may carry a display name (``"Acme <no-reply@acme.com>"``). The clock and
    randomness of ``runtime`` stamp the ``Date`` and ``Message-ID`` headers. Each send opens
    one connection and must finish within ``timeout``.

    Raises ``ValueError`` at construction for a bad URL or sender address.
    """

    def __init__(
        self,
        url: str,
        *,
        from_address: str = DEFAULT_FROM,
        runtime: Runtime | None = None,
        timeout: timedelta = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = parse_smtp_url(url)
        display_name, sender = parseaddr(from_address)
        self.sender = _single_address(sender, "from_address")
        self.from_header = formataddr((display_name, self.sender.addr_spec))
        self.runtime = runtime or Runtime()
        if timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.tls_context = tls_context

    def __repr__(self) -> str:
        return f"SmtpTransport({self.settings!r})"

    def message(self, mail: Mail) -> EmailMessage:
        """The message ``send`` would deliver. Raises ``ValueError`` for a recipient that is not
        one plain address with an ASCII local part (no SMTPUTF8), or for a subject with a line
        break (header injection)."""
        recipient = _single_address(mail.to, "the recipient")
        message = EmailMessage()
        message["From"] = self.from_header
        message["To"] = recipient.addr_spec
        message["Subject"] = mail.subject  # the email package refuses CR/LF in a header value
        message["Date"] = format_datetime(self.runtime.now())
        token = self.runtime.random.token_bytes(16).hex()
        message["Message-ID"] = f"<{token}@{self.sender.domain}>"
        # ASCII goes as is; anything else as quoted-printable, which every server accepts
        # (raw 8-bit bodies need the 8BITMIME extension).
        message.set_content(
            mail.text, charset="utf-8", cte=None if mail.text.isascii() else "quoted-printable"
        )
        return message

    async def send(self, mail: Mail) -> None:
        """Deliver ``mail`` to the server, which accepts it or fails the call.

        Raises ``ValueError`` for a mail that cannot be written as a message, and an
        ``aiosmtplib.SMTPException`` when the server cannot be reached
        (``SMTPConnectError``), refuses the login, the sender, the recipient or the data
        (``SMTPResponseException`` subclasses), lacks required STARTTLS
        (``SMTPException``) or does not finish within the timeout (``SMTPTimeoutError``).
        """
        message = self.message(mail)
        settings = self.settings
        seconds = self.timeout.total_seconds()
        try:
            # aiosmtplib's timeout bounds each step; this one bounds the whole conversation,
            # so a server that answers slowly but steadily cannot hold a delivery worker.
            async with asyncio.timeout(seconds):
                await aiosmtplib.send(
                    message,
                    sender=self.sender.addr_spec,
                    recipients=[str(message["To"])],
                    hostname=settings.host,
                    port=settings.port,
                    username=settings.username,
                    password=settings.password,
                    use_tls=settings.use_tls,
                    start_tls=settings.start_tls,
                    timeout=seconds,
                    local_hostname=self.local_hostname,
                    tls_context=self.tls_context,
                )
        except TimeoutError as exc:
            if isinstance(exc, aiosmtplib.SMTPTimeoutError):
                raise
            raise aiosmtplib.SMTPTimeoutError(
                f"the SMTP server at {settings.host}:{settings.port} did not finish in {seconds} s"
            ) from exc
        log.debug("mail handed to %s:%d", settings.host, settings.port)


def transport_from_url(
    url: str | None,
    *,
    from_address: str = DEFAULT_FROM,
    runtime: Runtime | None = None,
) -> MailTransport:
    """An ``SmtpTransport`` for an ``SMTP_URL``; without one (None or blank), the dev mailbox
    (``DevOutboxTransport``), which keeps mail in this process's memory for
    ``/api/dev/outbox``. A server with ``DEV_MODE=0`` refuses to start without an
    ``SMTP_URL`` (``Settings.check_can_serve``). Raises ``ValueError`` for a bad URL."""
    if url is None or not url.strip():
        return DevOutboxTransport(runtime=runtime)
    return SmtpTransport(url, from_address=from_address, runtime=runtime)


__all__ = ["SmtpSettings", "SmtpTransport", "parse_smtp_url", "transport_from_url"]
