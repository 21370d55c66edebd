"""Signing keys and JWTs for the Convex client (being written)."""

from __future__ import annotations

from backend.schema import TableDef

TABLES: dict[str, TableDef] = {}
