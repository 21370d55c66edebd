"""Per-transaction limits, like Convex's, so one function cannot take the database down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_docs_read: int = 16_384
    max_docs_written: int = 8_192
    max_document_bytes: int = 1 << 20
    max_depth: int = 64
    max_args_bytes: int = 8 << 20
    max_result_bytes: int = 8 << 20
    max_take: int = 16_384
    rate_limits: bool = True
    """Whether rate limits (the engine's and ``RateLimiter``'s) are enforced. The test
    harness turns them off unless a test asks for them; a server always enforces them."""
