"""Where a call came from, as far as the transport knows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientInfo:
    """Where a call came from (for audit trails and per-address rate limits): the client's
    address (the one a trusted proxy forwarded, else the peer's) and its ``User-Agent``."""

    ip_address: str | None = None
    user_agent: str | None = None


__all__ = ["ClientInfo"]
