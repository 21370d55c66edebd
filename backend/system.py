"""The engine's own tables and functions, gathered from its subsystems."""

from __future__ import annotations

from typing import Any

from backend import scheduler
from backend.mail import outbox
from backend.schema import Schema


def system_schema() -> Schema:
    return Schema({**scheduler.TABLES, **outbox.TABLES})


def system_functions() -> dict[str, Any]:
    return {**outbox.FUNCTIONS}
