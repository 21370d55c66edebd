"""Rate limiter (being written)."""

from __future__ import annotations

from backend.schema import TableDef

TABLES: dict[str, TableDef] = {}
