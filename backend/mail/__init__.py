"""Mail: queued inside transactions, delivered after commit by the scheduler.

A mail that carries a secret (a sign-in link, a code) says so: ``Mail(..., secret=...)`` with
``{secret}`` (``SECRET``) where it goes in the subject or text. The outbox keeps it sealed under
``SECRET_KEY`` and erases it once sent; see ``outbox.py`` for the rule.
"""

from backend.mail.outbox import (
    SECRET,
    TABLES,
    CaptureTransport,
    DeliveredMail,
    DevOutboxTransport,
    Mail,
    MailTransport,
    dev_outbox,
    queue_mail,
)
from backend.mail.sealing import SealBroken, SecretSeal, install_seal

__all__ = [
    "SECRET",
    "TABLES",
    "CaptureTransport",
    "DeliveredMail",
    "DevOutboxTransport",
    "Mail",
    "MailTransport",
    "SealBroken",
    "SecretSeal",
    "dev_outbox",
    "install_seal",
    "queue_mail",
]
