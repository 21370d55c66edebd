"""The engine's own tables and functions, gathered from its subsystems."""

from __future__ import annotations

from typing import Any

from backend import audit, migrator, scheduler
from backend.auth import jwt
from backend.auth import tables as auth_tables
from backend.mail import outbox
from backend.ratelimit import limiter
from backend.schema import Schema
from backend.sensitive import grants, verification


def system_schema() -> Schema:
    return Schema(
        {
            **scheduler.TABLES,
            **outbox.TABLES,
            **jwt.TABLES,
            **limiter.TABLES,
            **auth_tables.TABLES,
            **audit.TABLES,
            **grants.TABLES,
            **migrator.TABLES,
        }
    )


def system_functions() -> dict[str, Any]:
    return {**outbox.FUNCTIONS, **verification.FUNCTIONS}
