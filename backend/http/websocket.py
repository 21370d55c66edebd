"""The sync endpoint: ``/api/<any version>/sync``, a Convex protocol session per socket.

The upgrade is refused (403) when a browser's ``Origin`` is neither this server's own nor a
configured one: a WebSocket is not covered by CORS, so without this check any site a user
visits could open a socket with their cookies (cross-site WebSocket hijacking). Clients that
send no ``Origin`` at all (Node, native apps) are not browsers and cannot be hijacked so.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from backend.sync.session import SyncSession
from backend.udf.context import ClientInfo


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    parsed = urlsplit(origin)
    return bool(host) and parsed.netloc == host and parsed.scheme in ("http", "https")


class StarletteTransport:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def receive(self) -> str | bytes | None:
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    async def send(self, text: str) -> None:
        await self.websocket.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state is not WebSocketState.DISCONNECTED:
            await self.websocket.close(code, reason)


async def serve_session(
    websocket: WebSocket, allowed_origins: list[str], **session: object
) -> None:
    headers = websocket.headers
    if not origin_allowed(headers.get("origin"), headers.get("host"), allowed_origins):
        await websocket.close(code=1008, reason="Origin not allowed")
        return
    await websocket.accept()
    client = ClientInfo(
        ip_address=websocket.client.host if websocket.client else None,
        user_agent=headers.get("user-agent"),
    )
    await SyncSession(StarletteTransport(websocket), client=client, **session).run()  # type: ignore[arg-type]
