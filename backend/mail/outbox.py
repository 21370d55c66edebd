"""Mail that leaves only after commit: queued in the transaction, delivered by the scheduler.

``queue_mail`` writes the message to the ``_outbox`` system table and schedules its delivery in
the same transaction; a rolled-back transaction therefore sends nothing. Delivery is an
internal action run by the scheduler; a failed send is retried with exponential backoff
(at least once delivery: a crash between sending and recording it sends it again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel

from backend import scheduler
from backend.runtime import to_ms
from backend.schema import TableDef, table
from backend.transactions.transaction import SystemDatabase
from backend.udf.context import ActionCtx
from backend.udf.registry import internal_action

if TYPE_CHECKING:
    from backend.engine import Engine

log = logging.getLogger("backend.mail")
TABLE = "_outbox"
MAX_ATTEMPTS = 8
DELIVER_PATH = "_system/mail:deliver"


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str


class OutboxEntry(BaseModel):
    to: str
    subject: str
    text: str
    state: Literal["queued", "sent", "failed"]
    attempts: int
    sentAt: float | None = None
    lastError: str | None = None


TABLES: dict[str, TableDef] = {
    TABLE: table(OutboxEntry).index("by_to", "to").index("by_state", "state"),
}


class MailTransport(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand the mail to its carrier; raise to have it retried later."""
        ...


class DevOutboxTransport:
    """Keeps mail in the outbox only, readable at ``/api/dev/outbox`` when ``DEV_MODE=1``."""

    async def send(self, mail: Mail) -> None:
        log.info("dev outbox: mail to %s: %s", mail.to, mail.subject)


class CaptureTransport:
    """Collects mail in memory (the test harness's ``t.outbox``)."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []

    async def send(self, mail: Mail) -> None:
        self.sent.append(mail)


async def queue_mail(engine: Engine, db: SystemDatabase, mail: Mail) -> str:
    """Queue ``mail`` inside the caller's transaction; it is sent after that commits."""
    mail_id = await db.insert(
        TABLE,
        {
            "to": mail.to,
            "subject": mail.subject,
            "text": mail.text,
            "state": "queued",
            "attempts": 0,
        },
    )
    await scheduler.enqueue(engine, db, engine.runtime.now(), DELIVER_PATH, {"mailId": mail_id})
    return mail_id


@internal_action
async def deliver(ctx: ActionCtx, mailId: str) -> None:
    engine = ctx._engine
    entry = await engine.system_read(lambda db: db.get(mailId))
    if entry is None or entry["state"] != "queued":
        return
    transport: MailTransport = engine.mail_transport
    try:
        await transport.send(Mail(entry["to"], entry["subject"], entry["text"]))
    except Exception as exc:
        attempts = int(entry["attempts"]) + 1
        error_name = type(exc).__name__
        log.warning("mail to %s failed (attempt %d): %s", entry["to"], attempts, error_name)

        async def retry(db: SystemDatabase) -> None:
            final = attempts >= MAX_ATTEMPTS
            await db.patch(
                mailId,
                {
                    "attempts": attempts,
                    "lastError": error_name,
                    "state": "failed" if final else "queued",
                },
            )
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
            },
        )

    await engine.system_write(sent, label="_system/mail:sent")


FUNCTIONS: dict[str, Any] = {DELIVER_PATH: deliver}
