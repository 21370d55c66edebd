"""Timestamps as Better Auth's client reads them: ISO 8601, exactly three fractional digits, Z."""

from __future__ import annotations

from backend.runtime import from_ms


def iso(ms: float) -> str:
    when = from_ms(ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
