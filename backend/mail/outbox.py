"""Mail that leaves only after commit: queued in the transaction, delivered by the scheduler.

``queue_mail`` writes the message to the ``_outbox`` system table and schedules its delivery in
the same transaction; a rolled-back transaction therefore sends nothing. Delivery is an
internal action run by the scheduler; a failed send is retried with exponential backoff
(at least once delivery: a crash between sending and recording it sends it again).

**The rule for secrets.** The outbox is a table, and every table is a projection of the
append-only log: whatever is queued is written down for ever. A mail that carries a secret
(a sign-in link, a verification code, anything that signs someone in or proves something)
must name it in ``Mail.secret`` and write the ``{secret}`` placeholder where it goes; it is
then stored only sealed under ``SECRET_KEY`` (``backend/mail/sealing.py``), rendered into the
subject and text at send time, handed to the transport, and erased from the live document as
soon as the mail is sent (or given up on). The log keeps the sealed form only. Never put a
secret into ``subject`` or ``text`` themselves, and never log a mail's subject or body.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from backend import scheduler
from backend.mail.sealing import SealBroken, seal_of
from backend.runtime import Runtime, to_ms
from backend.schema_definition import TableDef, table
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import ActionCtx
from backend.udf.registry import internal_action
from backend.udf.system_context import SystemContext, engine_of

if TYPE_CHECKING:
    from backend.engine import Engine

log = logging.getLogger("backend.mail")
TABLE = "_outbox"
MAX_ATTEMPTS = 8
DELIVER_PATH = "_system/mail:deliver"
SECRET = "{secret}"  # noqa: S105 - a placeholder, not a password
"""The placeholder a mail's subject or text writes where its secret goes."""


@dataclass(frozen=True)
class Mail:
    """One message. A mail that carries a secret names it, and says where it goes::

        Mail(
            to=address,
            subject="Your verification code: {secret}",
            text="Your code is {secret}. It expires in 10 minutes.",
            secret=code,
        )

    ``queue_mail`` stores the subject and text as written (with the placeholder) and the
    secret sealed; the transport receives ``mail.rendered()``, the placeholder replaced.
    Raises ``TypeError`` for a secret with no placeholder to go to, for a placeholder
    without a secret, and for a secret that is already written out in the subject or text.
    Subject, text and secret stay out of ``repr``: a mail in a log line shows only whom it
    is for.
    """

    to: str
    subject: str = field(repr=False)
    text: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    outbox_id: str | None = field(default=None, compare=False)
    """The ``_outbox`` document a delivered mail comes from (set by the delivery)."""

    def __post_init__(self) -> None:
        placed = SECRET in self.subject or SECRET in self.text
        if self.secret is None:
            if placed:
                raise TypeError(f"this mail writes {SECRET} but carries no secret")
            return
        if not isinstance(self.secret, str) or not self.secret:
            raise TypeError("a mail's secret is a non-empty string")
        if not placed:
            raise TypeError(f"a mail with a secret writes {SECRET} where the secret goes")
        if self.secret in self.subject or self.secret in self.text:
            raise TypeError(f"the secret is written out in the mail; write {SECRET} instead")

    def rendered(self) -> Mail:
        """The mail as its recipient reads it: the secret in place of the placeholder."""
        if self.secret is None:
            return self
        return replace(
            self,
            subject=self.subject.replace(SECRET, self.secret),
            text=self.text.replace(SECRET, self.secret),
            secret=None,
        )


class OutboxEntry(BaseModel):
    to: str
    subject: str  # as written: a secret appears only as the placeholder
    text: str
    sealedSecret: str | None = None  # the secret, sealed; erased once sent or given up on
    state: Literal["queued", "sent", "failed"]
    attempts: int
    sentAt: float | None = None
    lastError: str | None = None


TABLES: dict[str, TableDef] = {
    TABLE: table(OutboxEntry).index("by_to", "to").index("by_state", "state"),
}


class MailTransport:
    """Where delivered mail goes: SMTP (``smtp.py``), the dev mailbox, a test's capture.

    Derive from it and implement ``send``; an engine takes one as ``Engine(mail_transport=...)``
    and keeps it in its services (``engine.services.get(MailTransport)``).
    """

    async def send(self, mail: Mail) -> None:
        """Hand the (rendered) mail to its carrier; raise to have it retried later."""
        raise NotImplementedError


@dataclass(frozen=True)
class DeliveredMail:
    mail: Mail
    sent_at_ms: float


class DevOutboxTransport(MailTransport):
    """The dev mailbox: keeps the newest ``keep`` delivered mails in this process's memory,
    readable at ``/api/dev/outbox`` when ``DEV_MODE=1`` and nowhere else. Like a mail catcher
    on the developer's machine, it is where mail is delivered; the database keeps no secret
    of it. It logs nothing about a mail: subjects and bodies hold codes and links."""

    def __init__(self, *, runtime: Runtime | None = None, keep: int | None = 1000) -> None:
        self._runtime = runtime or Runtime()
        self._kept: deque[DeliveredMail] = deque(maxlen=keep)

    async def send(self, mail: Mail) -> None:
        self._kept.append(DeliveredMail(mail.rendered(), to_ms(self._runtime.now())))

    def delivered(self, to: str | None = None) -> list[DeliveredMail]:
        """Mail delivered here, newest first; only that to ``to`` when given."""
        return [d for d in reversed(self._kept) if to is None or d.mail.to == to]


class CaptureTransport(DevOutboxTransport):
    """Collects every mail in memory (the test harness's ``t.outbox``)."""

    def __init__(self, *, runtime: Runtime | None = None) -> None:
        super().__init__(runtime=runtime, keep=None)

    @property
    def sent(self) -> list[Mail]:
        """Every mail delivered, oldest first, as its recipient reads it."""
        return [d.mail for d in self._kept]


def _bound_to(to: str, subject: str, text: str) -> str:
    """What a sealed secret is bound to: the mail it belongs to."""
    return "\x1f".join(("outbox", to, subject, text))


async def queue_mail(system: SystemContext, mail: Mail) -> str:
    """Queue ``mail`` in ``system``'s transaction; it is sent after that commits.

    A secret (``mail.secret``) is stored only sealed with the engine's key (see the rule for
    secrets above); raises ``RuntimeError`` when the engine has none rather than store it
    readable.
    """
    engine = system.engine
    fields: dict[str, Any] = {
        "to": mail.to,
        "subject": mail.subject,
        "text": mail.text,
        "state": "queued",
        "attempts": 0,
    }
    if mail.secret is not None:
        fields["sealedSecret"] = seal_of(engine.services).seal(
            mail.secret,
            bound_to=_bound_to(mail.to, mail.subject, mail.text),
            random=system.runtime.random,
        )
    mail_id = await system.db.insert(TABLE, fields)
    when = system.runtime.now()
    await scheduler.enqueue(engine, system.db, when, DELIVER_PATH, {"mailId": mail_id})
    return mail_id


def open_entry(engine: Engine, entry: dict[str, Any]) -> Mail:
    """A queued outbox document as the mail it is, secret opened. Raises ``SealBroken``."""
    sealed = entry.get("sealedSecret")
    secret = None
    if sealed is not None:
        secret = seal_of(engine.services).open(
            sealed, bound_to=_bound_to(entry["to"], entry["subject"], entry["text"])
        )
    return Mail(entry["to"], entry["subject"], entry["text"], secret)


@internal_action
async def deliver(ctx: ActionCtx, mailId: str) -> None:
    engine = engine_of(ctx)
    entry = await engine.system_read(lambda db: db.get(mailId))
    if entry is None or entry["state"] != "queued":
        return
    try:
        mail = open_entry(engine, entry)
    except SealBroken:
        # Sealed under another SECRET_KEY (a database moved to a server with another key):
        # it can never be sent. Give up on it, and drop what cannot be opened anyway.
        log.error("mail %s cannot be opened with this SECRET_KEY; it is not sent", mailId)

        async def broken(db: SystemDatabase) -> None:
            await db.patch(
                mailId, {"state": "failed", "lastError": "SealBroken", "sealedSecret": None}
            )

        await engine.system_write(broken, label="_system/mail:failed")
        return
    transport = engine.services.get(MailTransport)
    try:
        await transport.send(replace(mail.rendered(), outbox_id=mailId))
    except Exception as exc:
        attempts = int(entry["attempts"]) + 1
        error_name = type(exc).__name__
        log.warning("mail %s failed (attempt %d): %s", mailId, attempts, error_name)

        async def retry(db: SystemDatabase) -> None:
            final = attempts >= MAX_ATTEMPTS
            fields: dict[str, Any] = {
                "attempts": attempts,
                "lastError": error_name,
                "state": "failed" if final else "queued",
            }
            if final:
                fields["sealedSecret"] = None  # never to be sent: nothing left to keep
            await db.patch(mailId, fields)
            if not final:
                delay = timedelta(seconds=min(3600, 2**attempts))
                await scheduler.enqueue(
                    engine, db, engine.runtime.now() + delay, DELIVER_PATH, {"mailId": mailId}
                )

        await engine.system_write(retry, label="_system/mail:retry")
        return

    async def sent(db: SystemDatabase) -> None:
        await db.patch(
            mailId,
            {
                "state": "sent",
                "attempts": int(entry["attempts"]) + 1,
                "sentAt": to_ms(engine.runtime.now()),
                "sealedSecret": None,  # delivered: the secret is the recipient's alone now
            },
        )

    await engine.system_write(sent, label="_system/mail:sent")


async def dev_outbox(engine: Engine, to: str | None, *, limit: int = 100) -> list[dict[str, Any]]:
    """What ``/api/dev/outbox`` shows, newest first: mail still queued (opened here, in dev
    mode only), then mail the dev mailbox of this process received. ``[{to, subject, text,
    sentAt}]`` with ``sentAt`` in ms, or None while queued.

    The table is read before the mailbox: a mail sent in between is then in both, and shown
    once (as sent), and none can fall between the two reads.
    """

    async def read(db: SystemDatabase) -> list[dict[str, Any]]:
        query = db.query(TABLE)
        query = (
            query.with_index("by_to", to=to) if to else query.with_index("by_state", state="queued")
        )
        return [row async for row in query.order("desc") if row["state"] == "queued"][:limit]

    queued = await engine.system_read(read)
    transport = engine.services.find(MailTransport)
    delivered = transport.delivered(to) if isinstance(transport, DevOutboxTransport) else []
    sent_ids = {d.mail.outbox_id for d in delivered}
    shown: list[dict[str, Any]] = []
    for entry in queued:
        if entry["_id"] in sent_ids:
            continue
        try:
            mail = open_entry(engine, entry).rendered()
        except SealBroken:
            continue
        shown.append({"to": mail.to, "subject": mail.subject, "text": mail.text, "sentAt": None})
    for kept in delivered:
        mail = kept.mail
        shown.append(
            {"to": mail.to, "subject": mail.subject, "text": mail.text, "sentAt": kept.sent_at_ms}
        )
    return shown[:limit]


FUNCTIONS: dict[str, Any] = {DELIVER_PATH: deliver}
