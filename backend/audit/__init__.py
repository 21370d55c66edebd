"""The audit log: append-only records of verifications, grants and protected actions."""

from backend.audit.log import TABLES, AuditEvent, EventKind, list_events, record

__all__ = ["TABLES", "AuditEvent", "EventKind", "list_events", "record"]
