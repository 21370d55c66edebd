"""Mail: queued inside transactions, delivered after commit by the scheduler."""

from backend.mail.outbox import (
    TABLES,
    CaptureTransport,
    DevOutboxTransport,
    Mail,
    MailTransport,
    queue_mail,
)

__all__ = [
    "TABLES",
    "CaptureTransport",
    "DevOutboxTransport",
    "Mail",
    "MailTransport",
    "queue_mail",
]
