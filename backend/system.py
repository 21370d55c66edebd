"""The engine's own tables and functions, gathered from its subsystems."""

from __future__ import annotations

from typing import Any

from backend import audit, dashboard, environment, migrator, scheduler
from backend.auth import jwt
from backend.auth import tables as auth_tables
from backend.crons import jobs as cron_jobs
from backend.files import functions as file_storage
from backend.files import tables as file_tables
from backend.mail import outbox
from backend.ratelimit import limiter
from backend.schema_definition import Schema, SystemView
from backend.sensitive import account, factors, grants, verification

# The engine's tables that app code may read (``ctx.db.system.get`` / ``.query``), each with
# the view that shapes its documents as Convex shows them. This is the whole allow-list: every
# other ``_`` table (sessions, grants, codes, audit, rate limits, crons, ...) is refused. A
# subsystem that offers a table to apps declares its ``SystemView`` beside the table and adds
# one line here (file storage's ``_storage`` went in this way).
READABLE_BY_APPS: dict[str, SystemView] = {
    scheduler.TABLE: scheduler.VIEW,
    file_tables.TABLE: file_tables.VIEW,
}


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
            **factors.TABLES,
            **account.TABLES,
            **migrator.TABLES,
            **cron_jobs.TABLES,
            **file_tables.TABLES,
            **environment.TABLES,
        },
        views=READABLE_BY_APPS,
    )


def system_functions() -> dict[str, Any]:
    return {
        **outbox.FUNCTIONS,
        **verification.FUNCTIONS,
        **account.FUNCTIONS,
        **file_storage.FUNCTIONS,
        **dashboard.FUNCTIONS,
    }
